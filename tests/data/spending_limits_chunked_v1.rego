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

_zeros := "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"

_base := 1000000000000000

# digits only (trim with the digit cutset leaves nothing), 1 to 78 of them; cheaper than a regex per call
is_uint(s) if {
	is_string(s)
	count(s) > 0
	count(s) <= 78
	trim(s, "0123456789") == ""
}

_chunk(c) := 0 if trim_left(c, "0") == ""

else := to_number(trim_left(c, "0"))

# n 15-digit chunks, most significant first; each chunk and each chunk sum is exact in f64
_chunks(s, n) := cs if {
	p := concat("", [substring(_zeros, 0, (n * 15) - count(s)), s])
	cs := [c | some i in numbers.range(0, n - 1); c := _chunk(substring(p, i * 15, 15))]
}

_first_lte(diffs, _, _) if count(diffs) == 0

_first_lte(diffs, x, y) if {
	i := diffs[0]
	x[i] < y[i]
}

# a <= b, exactly: fewer digits, or as many digits and not lexically greater
_norm(s) := "0" if trim_left(s, "0") == ""

else := trim_left(s, "0")

uint_lte(a, b) if count(_norm(a)) < count(_norm(b))

uint_lte(a, b) if {
	count(_norm(a)) == count(_norm(b))
	_norm(a) <= _norm(b)
}

# carry into chunk i: some lower chunk j overflows and every chunk between them is all nines
_carry(s, i, n) := 1 if {
	some j in numbers.range(0, n - 1)
	j > i
	s[j] >= _base
	every k in [k | some k in numbers.range(0, n - 1); k > i; k < j] {
		s[k] == _base - 1
	}
}

else := 0

# a + b <= c, exactly (fixed-width chunked addition with carries, as few chunks as the longest number needs)
uint_sum_lte(a, b, c) if {
	n := ceil(max([count(a), count(b), count(c)]) / 15)
	x := _chunks(a, n)
	y := _chunks(b, n)
	z := _chunks(c, n)
	s := [w | some i in numbers.range(0, n - 1); w := x[i] + y[i]]
	cs := [k | some i in numbers.range(0, n - 1); k := _carry(s, i, n)]
	s[0] + cs[0] < _base
	r := [d | some i in numbers.range(0, n - 1); d := (s[i] + cs[i]) - (_base * to_number(s[i] + cs[i] >= _base))]
	_first_lte([i | some i in numbers.range(0, n - 1); r[i] != z[i]], r, z)
}

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

deny contains "invalid_amount" if not is_uint(amount)

deny contains "function_not_allowed" if {
	is_array(t.allowed_functions)
	count(t.allowed_functions) > 0
	not fname in t.allowed_functions
}

deny contains "exceeds_per_tx_limit" if {
	params_ok
	is_uint(amount)
	not uint_lte(amount, t.max_tx_wei)
}

deny contains "exceeds_daily_cap" if {
	params_ok
	spend_ok
	is_uint(amount)
	not uint_sum_lte(v.spent_today_wei, amount, t.daily_cap_wei)
}

allow if {
	params_ok
	spend_ok
	is_uint(amount)
	count(deny) == 0
}
