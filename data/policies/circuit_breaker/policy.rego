# Circuit breaker: stop transfers on a manual halt, high volatility, a price crash, or bursts of activity.
package circuit_breaker

import rego.v1

default allow := false

t := data.params

v := data.wasm.market

fname := input.function.name if is_object(input.function)

else := ""

args := input.decoded_function_arguments if is_array(input.decoded_function_arguments)

else := []

amount := args[1] if fname in {"transfer", "approve", "swap"}

else := args[2] if fname == "transferFrom"

else := input.value

# a <= b for unsigned decimal strings (no leading zeros after normalising), exact at any size
_zeros := "000000000000000000000000000000000000000000000000000000000000000000000000000000"

# digits only (trim with the digit cutset leaves nothing), 1 to 78 of them; cheaper than a regex per call
is_uint(s) if {
	is_string(s)
	count(s) > 0
	count(s) <= 78
	trim(s, "0123456789") == ""
}

# a <= b, exactly: left-padded with zeros to the same width, digit strings compare as their numbers do
uint_lte(a, b) if concat("", [substring(_zeros, 0, 78 - count(a)), a]) <= concat("", [substring(_zeros, 0, 78 - count(b)), b])

is_large if {
	is_uint(t.large_transfer_wei)
	is_uint(amount)
	uint_lte(t.large_transfer_wei, amount)
}

# --- well-formedness of the oracle output (fail closed) ----------------------------------

market_ok if {
	is_object(v)
	not v.error
	is_number(v.volatility_bps)
	is_number(v.price_usd)
	is_number(v.transfers_last_hour)
	is_number(v.large_transfers_last_hour)
}

# --- deny reasons -----------------------------------------------------------------------

deny contains "market_data_missing" if not market_ok

deny contains "manual_halt" if t.halt == true

deny contains "volatility_too_high" if {
	market_ok
	v.volatility_bps > t.max_volatility_bps
}

deny contains "price_below_floor" if {
	market_ok
	v.price_usd < t.min_price_usd
}

deny contains "rate_limit_exceeded" if {
	market_ok
	v.transfers_last_hour + 1 > t.max_transfers_per_hour
}

deny contains "burst_of_large_transfers" if {
	market_ok
	is_large
	v.large_transfers_last_hour + 1 > t.max_large_transfers_per_hour
}

allow if {
	market_ok
	count(deny) == 0
}
