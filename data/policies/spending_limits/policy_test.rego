package spending_limits_test

import data.spending_limits
import rego.v1

default_params := {
	"max_tx_wei": "10000000000000000000000",
	"daily_cap_wei": "25000000000000000000000",
	"allowed_functions": ["", "transfer", "approve", "swap"],
}

clean_data := {"spent_today_wei": "0"}

wrap(inner) := {"spend": inner}

with_data(overrides) := wrap(object.union(clean_data, overrides))

eth(value) := {"from": "0x1111111111111111111111111111111111111111", "to": "0x2222222222222222222222222222222222222222", "value": value, "data": "0x", "chain_id": "31337", "function_signature": "0x", "function": null, "decoded_function_signature": "", "decoded_function_arguments": []}

token(name, args) := {"from": "0x1111111111111111111111111111111111111111", "to": "0x3333333333333333333333333333333333333333", "value": "0", "data": "0x", "chain_id": "31337", "function_signature": "0x", "function": {"name": name, "type": "function", "inputs": [], "outputs": [], "stateMutability": "nonpayable"}, "decoded_function_signature": "", "decoded_function_arguments": args}

test_allows_small_eth_transfer if {
	spending_limits.allow with input as eth("1000000000000000000") with data.params as default_params with data.wasm as wrap(clean_data)
	count(spending_limits.deny) == 0 with input as eth("1000000000000000000") with data.params as default_params with data.wasm as wrap(clean_data)
}

test_allows_exactly_at_per_tx_limit if {
	spending_limits.allow with input as eth("10000000000000000000000") with data.params as default_params with data.wasm as wrap(clean_data)
}

test_denies_one_wei_above_per_tx_limit if {
	not spending_limits.allow with input as eth("10000000000000000000001") with data.params as default_params with data.wasm as wrap(clean_data)
	"exceeds_per_tx_limit" in spending_limits.deny with input as eth("10000000000000000000001") with data.params as default_params with data.wasm as wrap(clean_data)
}

test_token_transfer_amount_is_checked if {
	"exceeds_per_tx_limit" in spending_limits.deny with input as token("transfer", ["0x4444444444444444444444444444444444444444", "20000000000000000000000"]) with data.params as default_params with data.wasm as wrap(clean_data)
}

test_transfer_from_uses_third_argument if {
	spending_limits.allow with input as token("transferFrom", ["0x4444444444444444444444444444444444444444", "0x5555555555555555555555555555555555555555", "5"]) with data.params as object.union(default_params, {"allowed_functions": []}) with data.wasm as wrap(clean_data)
}

test_daily_cap_exact_with_carry if {
	# 15000000000000000000000 + 10000000000000000000000 = 25000000000000000000000 == cap
	d := with_data({"spent_today_wei": "15000000000000000000000"})
	spending_limits.allow with input as eth("10000000000000000000000") with data.params as default_params with data.wasm as d
}

test_daily_cap_one_wei_over if {
	d := with_data({"spent_today_wei": "15000000000000000000001"})
	"exceeds_daily_cap" in spending_limits.deny with input as eth("10000000000000000000000") with data.params as default_params with data.wasm as d
	not spending_limits.allow with input as eth("10000000000000000000000") with data.params as default_params with data.wasm as d
}

test_missing_spend_data_fails_closed if {
	"spend_data_missing" in spending_limits.deny with input as eth("1") with data.params as default_params with data.wasm as wrap({})
	not spending_limits.allow with input as eth("1") with data.params as default_params with data.wasm as {}
}

test_oracle_error_fails_closed if {
	not spending_limits.allow with input as eth("1") with data.params as default_params with data.wasm as wrap({"error": "oracle failed", "spent_today_wei": "0"})
}

test_numeric_params_are_rejected if {
	"invalid_params" in spending_limits.deny with input as eth("1") with data.params as {"max_tx_wei": 10, "daily_cap_wei": "100"} with data.wasm as wrap(clean_data)
}

test_function_not_allowed if {
	"function_not_allowed" in spending_limits.deny with input as token("setApprovalForAll", ["0x4444444444444444444444444444444444444444", true]) with data.params as default_params with data.wasm as wrap(clean_data)
}

test_limits_above_2_pow_53 if {
	# 2^53 = 9007199254740992; these limits differ from it by one wei
	p := object.union(default_params, {"max_tx_wei": "9007199254740993", "daily_cap_wei": "90071992547409930"})
	spending_limits.allow with input as eth("9007199254740993") with data.params as p with data.wasm as wrap(clean_data)
	not spending_limits.allow with input as eth("9007199254740994") with data.params as p with data.wasm as wrap(clean_data)
}
