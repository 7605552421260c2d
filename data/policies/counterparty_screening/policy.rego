# Counterparty screening: sanctions oracle, blocklist, optional allowlist-only mode, risk flags.
package counterparty_screening

import rego.v1

default allow := false

t := data.params

v := data.wasm.sanctions

fname := input.function.name if is_object(input.function)

else := ""

args := input.decoded_function_arguments if is_array(input.decoded_function_arguments)

else := []

# Who receives value: the recipient / spender argument of token calls, else the call target.
counterparty := lower(args[0]) if {
	fname in {"transfer", "approve"}
	is_string(args[0])
}

else := lower(args[1]) if {
	fname == "transferFrom"
	is_string(args[1])
}

else := lower(input.to)

blocklist := {lower(a) | some a in t.blocklist; is_string(a)}

allowlist := {lower(a) | some a in t.allowlist; is_string(a)}

# --- well-formedness of the oracle output (fail closed) ----------------------------------

screening_ok if {
	is_object(v)
	not v.error
	is_string(v.address)
	is_boolean(v.sanctioned)
	is_array(v.flags)
	is_number(v.risk_score)
}

# --- deny reasons -----------------------------------------------------------------------

deny contains "sanctions_data_missing" if not screening_ok

deny contains "screened_address_mismatch" if {
	screening_ok
	lower(v.address) != counterparty
}

deny contains "counterparty_sanctioned" if {
	t.deny_on_sanctioned == true
	v.sanctioned == true
}

deny contains "counterparty_blocklisted" if counterparty in blocklist

deny contains "counterparty_not_allowlisted" if {
	t.allowlist_only == true
	not counterparty in allowlist
}

deny contains sprintf("flag_blocked:%s", [f]) if {
	some f in v.flags
	f in t.blocked_flags
}

deny contains "risk_score_too_high" if {
	is_number(t.max_risk_score)
	v.risk_score > t.max_risk_score
}

allow if {
	screening_ok
	count(deny) == 0
}
