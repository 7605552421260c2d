# KYC and jurisdiction: the sender must hold an approved, unexpired KYC record from an allowed country.
# "Now" is the oracle's check time (checked_at), so a replay gives the same verdict later.
package kyc_jurisdiction

import rego.v1

default allow := false

t := data.params

v := data.wasm.kyc

sender := lower(input.from)

country := upper(v.country) if kyc_ok

blocked := {upper(c) | some c in t.blocked_countries}

allowed := {upper(c) | some c in t.allowed_countries}

remaining_validity_s := v.expires_at - v.checked_at if kyc_ok

# --- well-formedness of the oracle output (fail closed) ----------------------------------

kyc_ok if {
	is_object(v)
	not v.error
	is_string(v.address)
	is_string(v.status)
	is_string(v.country)
	is_number(v.expires_at)
	is_number(v.checked_at)
}

# --- deny reasons -----------------------------------------------------------------------

deny contains "kyc_data_missing" if not kyc_ok

deny contains "kyc_address_mismatch" if {
	kyc_ok
	lower(v.address) != sender
}

deny contains "kyc_not_approved" if {
	t.require_kyc == true
	kyc_ok
	v.status != "approved"
}

deny contains "kyc_expired" if {
	t.require_kyc == true
	kyc_ok
	remaining_validity_s <= t.min_remaining_validity_s
}

deny contains "jurisdiction_blocked" if {
	kyc_ok
	country in blocked
}

deny contains "jurisdiction_not_allowed" if {
	kyc_ok
	count(allowed) > 0
	not country in allowed
}

allow if {
	kyc_ok
	count(deny) == 0
}
