# Spending limits: a per-transaction limit and a rolling daily cap, exact in wei.
# Amounts are compared as decimal strings (wei exceeds the 2^53 of Rego's f64 numbers).
package spending_limits

import rego.v1

default allow := false

t := data.params

v := data.wasm.spend

# --- what the intent moves -------------------------------------------------------------

fname := input.function.name if is_object(input.function)

else := ""

args := input.decoded_function_arguments if is_array(input.decoded_function_arguments)

else := []

# Token calls move their amount argument; anything else moves the native value.
amount := args[1] if fname in {"transfer", "approve", "swap"}

else := args[2] if fname == "transferFrom"

else := input.value

# --- exact unsigned decimal arithmetic on strings ---------------------------------------
# Loop-free on purpose: a fixed chain of 13-digit chunks costs a few builtin calls, where comprehensions over a
# variable number of chunks cost many times more per decision (`lens bench whatif` re-runs millions of these).

_zeros := "000000000000000000000000000000000000000000000000000000000000000000000000000000"

_base := 10000000000000 # 10^13: two chunks and a carry stay far below 2^53, so every sum is exact in f64

# digits only (trim with the digit cutset leaves nothing), 1 to 78 of them; cheaper than a regex per call
is_uint(s) if {
	is_string(s)
	count(s) > 0
	count(s) <= 78
	trim(s, "0123456789") == ""
}

# a <= b, exactly: left-padded with zeros to the same width, digit strings compare as their numbers do
uint_lte(a, b) if concat("", [substring(_zeros, 0, 78 - count(a)), a]) <= concat("", [substring(_zeros, 0, 78 - count(b)), b])

# a + b <= c, exactly: two chunks when every operand has at most 26 digits (any realistic amount), else six.
# A chunk is read as to_number("1" + its 13 digits) - 10^13: the leading 1 keeps zeros from being a number's
# leading digits. A carry is floor(sum / 10^13), exact below 2^53. Chunk arrays compare element by element.
uint_sum_lte(a, b, c) if {
	count(a) <= 26
	count(b) <= 26
	count(c) <= 26
	x := concat("", [substring(_zeros, 0, 26 - count(a)), a])
	y := concat("", [substring(_zeros, 0, 26 - count(b)), b])
	z := concat("", [substring(_zeros, 0, 26 - count(c)), c])
	s1 := (to_number(concat("", ["1", substring(x, 13, 13)])) + to_number(concat("", ["1", substring(y, 13, 13)]))) - (2 * _base)
	k1 := floor(s1 / _base)
	s0 := ((to_number(concat("", ["1", substring(x, 0, 13)])) + to_number(concat("", ["1", substring(y, 0, 13)]))) - (2 * _base)) + k1
	s0 < _base
	[s0, s1 - (k1 * _base)] <= [to_number(concat("", ["1", substring(z, 0, 13)])) - _base, to_number(concat("", ["1", substring(z, 13, 13)])) - _base]
}

uint_sum_lte(a, b, c) if {
	max([count(a), count(b), count(c)]) > 26
	x := concat("", [substring(_zeros, 0, 78 - count(a)), a])
	y := concat("", [substring(_zeros, 0, 78 - count(b)), b])
	z := concat("", [substring(_zeros, 0, 78 - count(c)), c])
	s5 := _chunk(x, 5) + _chunk(y, 5)
	k5 := floor(s5 / _base)
	s4 := (_chunk(x, 4) + _chunk(y, 4)) + k5
	k4 := floor(s4 / _base)
	s3 := (_chunk(x, 3) + _chunk(y, 3)) + k4
	k3 := floor(s3 / _base)
	s2 := (_chunk(x, 2) + _chunk(y, 2)) + k3
	k2 := floor(s2 / _base)
	s1 := (_chunk(x, 1) + _chunk(y, 1)) + k2
	k1 := floor(s1 / _base)
	s0 := (_chunk(x, 0) + _chunk(y, 0)) + k1
	s0 < _base
	sum := [s0, s1 - (k1 * _base), s2 - (k2 * _base), s3 - (k3 * _base), s4 - (k4 * _base), s5 - (k5 * _base)]
	sum <= [_chunk(z, 0), _chunk(z, 1), _chunk(z, 2), _chunk(z, 3), _chunk(z, 4), _chunk(z, 5)]
}

# chunk k (0 = most significant) of a 78-digit padded string, as a number
_chunk(p, k) := to_number(concat("", ["1", substring(p, k * 13, 13)])) - _base

# --- well-formedness (fail closed) ------------------------------------------------------

params_ok if {
	is_uint(t.max_tx_wei)
	is_uint(t.daily_cap_wei)
}

spend_ok if {
	is_object(v)
	not v.error
	is_uint(v.spent_today_wei)
}

# --- deny reasons -----------------------------------------------------------------------

deny contains "invalid_params" if not params_ok

deny contains "spend_data_missing" if not spend_ok

# a rule, not a call at each use: its value is computed once per evaluation
amount_ok if is_uint(amount)

deny contains "invalid_amount" if not amount_ok

deny contains "function_not_allowed" if {
	is_array(t.allowed_functions)
	count(t.allowed_functions) > 0
	not fname in t.allowed_functions
}

deny contains "exceeds_per_tx_limit" if {
	params_ok
	amount_ok
	not uint_lte(amount, t.max_tx_wei)
}

deny contains "exceeds_daily_cap" if {
	params_ok
	spend_ok
	amount_ok
	not uint_sum_lte(v.spent_today_wei, amount, t.daily_cap_wei)
}

allow if {
	params_ok
	spend_ok
	amount_ok
	count(deny) == 0
}
