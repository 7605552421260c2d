package circuit_breaker_test

import data.circuit_breaker
import rego.v1

default_params := {
	"halt": false,
	"max_volatility_bps": 800,
	"min_price_usd": 100,
	"max_transfers_per_hour": 30,
	"large_transfer_wei": "10000000000000000000",
	"max_large_transfers_per_hour": 9,
}

clean_data := {"asset": "eth", "volatility_bps": 120, "price_usd": 3012.5, "transfers_last_hour": 2, "large_transfers_last_hour": 0}

wrap(inner) := {"market": inner}

with_data(overrides) := wrap(object.union(clean_data, overrides))

eth(value) := {"from": "0x1111111111111111111111111111111111111111", "to": "0x2222222222222222222222222222222222222222", "value": value, "data": "0x", "chain_id": "31337", "function_signature": "0x", "function": null, "decoded_function_signature": "", "decoded_function_arguments": []}

big := "50000000000000000000"

test_calm_market_allowed if {
	circuit_breaker.allow with input as eth(big) with data.params as default_params with data.wasm as wrap(clean_data)
	count(circuit_breaker.deny) == 0 with input as eth(big) with data.params as default_params with data.wasm as wrap(clean_data)
}

test_manual_halt if {
	"manual_halt" in circuit_breaker.deny with input as eth("1") with data.params as object.union(default_params, {"halt": true}) with data.wasm as wrap(clean_data)
	not circuit_breaker.allow with input as eth("1") with data.params as object.union(default_params, {"halt": true}) with data.wasm as wrap(clean_data)
}

test_volatility_above_max if {
	"volatility_too_high" in circuit_breaker.deny with input as eth("1") with data.params as default_params with data.wasm as with_data({"volatility_bps": 801})
	circuit_breaker.allow with input as eth("1") with data.params as default_params with data.wasm as with_data({"volatility_bps": 800})
}

test_price_below_floor if {
	"price_below_floor" in circuit_breaker.deny with input as eth("1") with data.params as default_params with data.wasm as with_data({"price_usd": 99.5})
}

test_rate_limit if {
	"rate_limit_exceeded" in circuit_breaker.deny with input as eth("1") with data.params as default_params with data.wasm as with_data({"transfers_last_hour": 30})
	circuit_breaker.allow with input as eth("1") with data.params as default_params with data.wasm as with_data({"transfers_last_hour": 29})
}

test_tenth_large_transfer_in_an_hour_denied if {
	"burst_of_large_transfers" in circuit_breaker.deny with input as eth(big) with data.params as default_params with data.wasm as with_data({"large_transfers_last_hour": 9})
	circuit_breaker.allow with input as eth(big) with data.params as default_params with data.wasm as with_data({"large_transfers_last_hour": 8})
}

test_small_transfers_do_not_count_as_burst if {
	circuit_breaker.allow with input as eth("9999999999999999999") with data.params as default_params with data.wasm as with_data({"large_transfers_last_hour": 9})
}

test_large_threshold_is_exact_above_2_pow_53 if {
	# exactly at the threshold counts as large
	"burst_of_large_transfers" in circuit_breaker.deny with input as eth("10000000000000000000") with data.params as default_params with data.wasm as with_data({"large_transfers_last_hour": 9})
}

test_oracle_error_fails_closed if {
	not circuit_breaker.allow with input as eth("1") with data.params as default_params with data.wasm as wrap({"error": "feed stale"})
	"market_data_missing" in circuit_breaker.deny with input as eth("1") with data.params as default_params with data.wasm as {}
}

test_string_numbers_fail_closed if {
	not circuit_breaker.allow with input as eth("1") with data.params as default_params with data.wasm as with_data({"volatility_bps": "120"})
}
