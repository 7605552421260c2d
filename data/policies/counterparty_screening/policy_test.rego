package counterparty_screening_test

import data.counterparty_screening
import rego.v1

default_params := {
	"deny_on_sanctioned": true,
	"blocklist": ["0x6666666666666666666666666666666666666666"],
	"allowlist_only": false,
	"allowlist": [],
	"blocked_flags": ["mixer", "scam"],
	"max_risk_score": 70,
}

recipient := "0x4444444444444444444444444444444444444444"

clean_data := {"address": recipient, "sanctioned": false, "flags": [], "risk_score": 10, "list_version": "2026-11-29"}

wrap(inner) := {"sanctions": inner}

with_data(overrides) := wrap(object.union(clean_data, overrides))

eth_to(to) := {"from": "0x1111111111111111111111111111111111111111", "to": to, "value": "1", "data": "0x", "chain_id": "31337", "function_signature": "0x", "function": null, "decoded_function_signature": "", "decoded_function_arguments": []}

token_transfer(to) := {"from": "0x1111111111111111111111111111111111111111", "to": "0x3333333333333333333333333333333333333333", "value": "0", "data": "0x", "chain_id": "31337", "function_signature": "0x", "function": {"name": "transfer", "type": "function", "inputs": [], "outputs": [], "stateMutability": "nonpayable"}, "decoded_function_signature": "transfer(address,uint256)", "decoded_function_arguments": [to, "5"]}

test_clean_counterparty_allowed if {
	counterparty_screening.allow with input as eth_to(recipient) with data.params as default_params with data.wasm as wrap(clean_data)
	count(counterparty_screening.deny) == 0 with input as eth_to(recipient) with data.params as default_params with data.wasm as wrap(clean_data)
}

test_sanctioned_denied if {
	d := with_data({"sanctioned": true})
	"counterparty_sanctioned" in counterparty_screening.deny with input as eth_to(recipient) with data.params as default_params with data.wasm as d
	not counterparty_screening.allow with input as eth_to(recipient) with data.params as default_params with data.wasm as d
}

test_sanctioned_allowed_when_toggle_off if {
	d := with_data({"sanctioned": true})
	counterparty_screening.allow with input as eth_to(recipient) with data.params as object.union(default_params, {"deny_on_sanctioned": false}) with data.wasm as d
}

test_token_recipient_is_the_counterparty if {
	counterparty_screening.allow with input as token_transfer(upper(recipient)) with data.params as default_params with data.wasm as wrap(clean_data)
}

test_screened_address_mismatch if {
	"screened_address_mismatch" in counterparty_screening.deny with input as eth_to("0x7777777777777777777777777777777777777777") with data.params as default_params with data.wasm as wrap(clean_data)
}

test_blocklisted if {
	b := "0x6666666666666666666666666666666666666666"
	"counterparty_blocklisted" in counterparty_screening.deny with input as eth_to(b) with data.params as default_params with data.wasm as with_data({"address": b})
}

test_allowlist_only if {
	p := object.union(default_params, {"allowlist_only": true, "allowlist": [upper(recipient)]})
	counterparty_screening.allow with input as eth_to(recipient) with data.params as p with data.wasm as wrap(clean_data)
	"counterparty_not_allowlisted" in counterparty_screening.deny with input as eth_to(recipient) with data.params as object.union(default_params, {"allowlist_only": true}) with data.wasm as wrap(clean_data)
}

test_blocked_flag_reason_is_formatted if {
	"flag_blocked:mixer" in counterparty_screening.deny with input as eth_to(recipient) with data.params as default_params with data.wasm as with_data({"flags": ["mixer", "exchange"]})
}

test_risk_score_above_max if {
	"risk_score_too_high" in counterparty_screening.deny with input as eth_to(recipient) with data.params as default_params with data.wasm as with_data({"risk_score": 71})
	counterparty_screening.allow with input as eth_to(recipient) with data.params as default_params with data.wasm as with_data({"risk_score": 70})
}

test_oracle_error_fails_closed if {
	not counterparty_screening.allow with input as eth_to(recipient) with data.params as default_params with data.wasm as wrap({"error": "oracle failed"})
	"sanctions_data_missing" in counterparty_screening.deny with input as eth_to(recipient) with data.params as default_params with data.wasm as wrap({})
}

test_no_fail_open_on_malformed_fields if {
	d := with_data({"sanctioned": "false", "risk_score": "10"})
	not counterparty_screening.allow with input as eth_to(recipient) with data.params as default_params with data.wasm as d
}
