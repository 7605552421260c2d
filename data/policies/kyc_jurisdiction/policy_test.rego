package kyc_jurisdiction_test

import data.kyc_jurisdiction
import rego.v1

default_params := {
	"require_kyc": true,
	"allowed_countries": [],
	"blocked_countries": ["KP", "IR", "CU", "SY"],
	"min_remaining_validity_s": 0,
}

sender := "0x1111111111111111111111111111111111111111"

clean_data := {"address": sender, "status": "approved", "country": "DE", "expires_at": 1830000000, "checked_at": 1795000000}

wrap(inner) := {"kyc": inner}

with_data(overrides) := wrap(object.union(clean_data, overrides))

intent := {"from": upper(sender), "to": "0x2222222222222222222222222222222222222222", "value": "1", "data": "0x", "chain_id": "31337", "function_signature": "0x", "function": null, "decoded_function_signature": "", "decoded_function_arguments": []}

test_approved_sender_allowed if {
	kyc_jurisdiction.allow with input as intent with data.params as default_params with data.wasm as wrap(clean_data)
	count(kyc_jurisdiction.deny) == 0 with input as intent with data.params as default_params with data.wasm as wrap(clean_data)
}

test_pending_kyc_denied if {
	d := with_data({"status": "pending"})
	"kyc_not_approved" in kyc_jurisdiction.deny with input as intent with data.params as default_params with data.wasm as d
	not kyc_jurisdiction.allow with input as intent with data.params as default_params with data.wasm as d
}

test_kyc_not_required if {
	d := with_data({"status": "none"})
	kyc_jurisdiction.allow with input as intent with data.params as object.union(default_params, {"require_kyc": false}) with data.wasm as d
}

test_expired_kyc_denied if {
	"kyc_expired" in kyc_jurisdiction.deny with input as intent with data.params as default_params with data.wasm as with_data({"expires_at": 1795000000})
	kyc_jurisdiction.allow with input as intent with data.params as default_params with data.wasm as with_data({"expires_at": 1795000001})
}

test_min_remaining_validity if {
	p := object.union(default_params, {"min_remaining_validity_s": 86400})
	"kyc_expired" in kyc_jurisdiction.deny with input as intent with data.params as p with data.wasm as with_data({"expires_at": 1795086400})
	kyc_jurisdiction.allow with input as intent with data.params as p with data.wasm as with_data({"expires_at": 1795086401})
}

test_blocked_jurisdiction if {
	"jurisdiction_blocked" in kyc_jurisdiction.deny with input as intent with data.params as default_params with data.wasm as with_data({"country": "kp"})
}

test_allowed_countries_list if {
	p := object.union(default_params, {"allowed_countries": ["DE", "FR"]})
	kyc_jurisdiction.allow with input as intent with data.params as p with data.wasm as wrap(clean_data)
	"jurisdiction_not_allowed" in kyc_jurisdiction.deny with input as intent with data.params as p with data.wasm as with_data({"country": "US"})
}

test_address_mismatch if {
	"kyc_address_mismatch" in kyc_jurisdiction.deny with input as intent with data.params as default_params with data.wasm as with_data({"address": "0x9999999999999999999999999999999999999999"})
}

test_oracle_error_fails_closed if {
	not kyc_jurisdiction.allow with input as intent with data.params as default_params with data.wasm as wrap({"error": "registry down"})
	"kyc_data_missing" in kyc_jurisdiction.deny with input as intent with data.params as default_params with data.wasm as {}
}

test_string_timestamps_fail_closed if {
	not kyc_jurisdiction.allow with input as intent with data.params as default_params with data.wasm as with_data({"expires_at": "1830000000"})
}
