"""Golden cases for the engine tests (data only, no tests here): one intent/params/oracle output per deny reason, plus allows."""

from __future__ import annotations

import eth_abi
from eth_utils import keccak

from app.engine import Intent, intent_input

SENDER = "0x" + "a1" * 20
TO = "0x" + "b2" * 20
TOKEN = "0x" + "3c" * 20
ETH = 10**18


def eth(value: int) -> dict:
    """Input of a native transfer of `value` wei from SENDER to TO."""
    return intent_input(Intent(SENDER, TO, value, b"", 31337, b""))


def token_transfer(to: str, amount: int) -> dict:
    """Input of a dUSD transfer(to, amount)."""
    sig = "transfer(address,uint256)"
    data = keccak(text=sig)[:4] + eth_abi.encode(["address", "uint256"], [to, amount])
    return intent_input(Intent(SENDER, TOKEN, 0, data, 31337, sig.encode()))


SPEND_P = {
    "max_tx_wei": str(10_000 * ETH),
    "daily_cap_wei": str(25_000 * ETH),
    "allowed_functions": ["", "transfer", "approve", "swap"],
}
SCREEN_P = {
    "deny_on_sanctioned": True,
    "blocklist": ["0x" + "66" * 20],
    "allowlist_only": False,
    "allowlist": [],
    "blocked_flags": ["mixer", "scam"],
    "max_risk_score": 70,
}
KYC_P = {
    "require_kyc": True,
    "allowed_countries": [],
    "blocked_countries": ["KP", "IR", "CU", "SY"],
    "min_remaining_validity_s": 0,
}
CB_P = {
    "halt": False,
    "max_volatility_bps": 800,
    "min_price_usd": 100,
    "max_transfers_per_hour": 30,
    "large_transfer_wei": str(10 * ETH),
    "max_large_transfers_per_hour": 9,
}


def sanctions(**kw) -> dict:
    return {
        "sanctions": {
            "address": TO,
            "sanctioned": False,
            "flags": [],
            "risk_score": 10,
            "list_version": "2026-11-29",
            **kw,
        }
    }


def kyc(**kw) -> dict:
    return {
        "kyc": {
            "address": SENDER,
            "status": "approved",
            "country": "DE",
            "expires_at": 1830000000,
            "checked_at": 1795000000,
            **kw,
        }
    }


def market(**kw) -> dict:
    return {
        "market": {
            "asset": "eth",
            "volatility_bps": 120,
            "price_usd": 3012.5,
            "transfers_last_hour": 2,
            "large_transfers_last_hour": 0,
            **kw,
        }
    }


# (policy, case name, input, params, wasm, expected deny reasons, phrase the sentence must contain)
CASES = [
    (
        "spending_limits",
        "allow",
        eth(5 * ETH),
        SPEND_P,
        {"spend": {"spent_today_wei": str(1000 * ETH)}},
        (),
        "Allowed: no deny reason applies",
    ),
    (
        "spending_limits",
        "per_tx",
        eth(12_500 * ETH),
        SPEND_P,
        {"spend": {"spent_today_wei": "0"}},
        ("exceeds_per_tx_limit",),
        "Denied: the amount of 12,500 ETH (12500000000000000000000 wei) exceeds this client's per-transaction limit of 10,000 ETH",
    ),
    (
        "spending_limits",
        "daily_cap",
        token_transfer(TO, 6_000 * ETH),
        SPEND_P,
        {"spend": {"spent_today_wei": str(20_000 * ETH)}},
        ("exceeds_daily_cap",),
        "already spent today plus 6,000 tokens of 0x3c3c…3c3c (6000000000000000000000 wei) exceeds the daily cap of 25,000 tokens of 0x3c3c…3c3c",
    ),
    (
        "spending_limits",
        "function",
        intent_input(
            Intent(
                SENDER,
                TOKEN,
                0,
                keccak(text="burn(uint256)")[:4] + eth_abi.encode(["uint256"], [1]),
                31337,
                b"burn(uint256)",
            )
        ),
        SPEND_P,
        {"spend": {"spent_today_wei": "0"}},
        ("function_not_allowed",),
        "the function burn is not in the allowed functions",
    ),
    (
        "spending_limits",
        "spend_missing",
        eth(1),
        SPEND_P,
        {"spend": {"error": "ledger down"}},
        ("spend_data_missing",),
        "spend-so-far oracle returned no usable data",
    ),
    (
        "spending_limits",
        "invalid_params",
        eth(1),
        {"max_tx_wei": 10, "daily_cap_wei": "100"},
        {"spend": {"spent_today_wei": "0"}},
        ("invalid_params",),
        "not decimal wei strings",
    ),
    ("counterparty_screening", "allow", eth(1), SCREEN_P, sanctions(), (), "Allowed"),
    (
        "counterparty_screening",
        "sanctioned",
        eth(1),
        SCREEN_P,
        sanctions(sanctioned=True),
        ("counterparty_sanctioned",),
        f"the counterparty {TO} is on the sanctions list",
    ),
    (
        "counterparty_screening",
        "blocklisted",
        eth(1) | {"to": "0x" + "66" * 20},
        SCREEN_P,
        sanctions(address="0x" + "66" * 20),
        ("counterparty_blocklisted",),
        "is on this client's blocklist",
    ),
    (
        "counterparty_screening",
        "not_allowlisted",
        eth(1),
        SCREEN_P | {"allowlist_only": True},
        sanctions(),
        ("counterparty_not_allowlisted",),
        "is not on this client's allowlist",
    ),
    (
        "counterparty_screening",
        "flag",
        eth(1),
        SCREEN_P,
        sanctions(flags=["mixer"]),
        ("flag_blocked:mixer",),
        "blocked risk flag (mixer)",
    ),
    (
        "counterparty_screening",
        "risk",
        eth(1),
        SCREEN_P,
        sanctions(risk_score=85),
        ("risk_score_too_high",),
        "risk score of 85 exceeds the maximum of 70",
    ),
    (
        "counterparty_screening",
        "mismatch",
        eth(1),
        SCREEN_P,
        sanctions(address="0x" + "99" * 20),
        ("screened_address_mismatch",),
        "screened a different address",
    ),
    (
        "counterparty_screening",
        "missing",
        eth(1),
        SCREEN_P,
        {"sanctions": {"error": "timeout"}},
        ("sanctions_data_missing",),
        'no usable data, so the policy fails closed; the sanctions oracle reported "timeout"',
    ),
    ("kyc_jurisdiction", "allow", eth(1), KYC_P, kyc(), (), "Allowed"),
    (
        "kyc_jurisdiction",
        "not_approved",
        eth(1),
        KYC_P,
        kyc(status="pending"),
        ("kyc_not_approved",),
        "KYC status is pending, not approved",
    ),
    (
        "kyc_jurisdiction",
        "expired",
        eth(1),
        KYC_P,
        kyc(expires_at=1794000000),
        ("kyc_expired",),
        "has nothing (it ran out 11 d 13 h before) left at the check; this client needs more than 0 s",
    ),
    (
        "kyc_jurisdiction",
        "blocked",
        eth(1),
        KYC_P,
        kyc(country="IR"),
        ("jurisdiction_blocked",),
        "the sender's country IR is blocked",
    ),
    (
        "kyc_jurisdiction",
        "not_allowed",
        eth(1),
        KYC_P | {"allowed_countries": ["FR"]},
        kyc(),
        ("jurisdiction_not_allowed",),
        "country DE is not in the allowed countries",
    ),
    (
        "kyc_jurisdiction",
        "address",
        eth(1),
        KYC_P,
        kyc(address="0x" + "99" * 20),
        ("kyc_address_mismatch",),
        "belongs to a different address",
    ),
    ("kyc_jurisdiction", "missing", eth(1), KYC_P, {}, ("kyc_data_missing",), "KYC registry returned no usable data"),
    ("circuit_breaker", "allow", eth(50 * ETH), CB_P, market(), (), "Allowed"),
    ("circuit_breaker", "halt", eth(1), CB_P | {"halt": True}, market(), ("manual_halt",), "manual halt switch is on"),
    (
        "circuit_breaker",
        "volatility",
        eth(1),
        CB_P,
        market(volatility_bps=950),
        ("volatility_too_high",),
        "volatility of 950 bps exceeds the maximum of 800 bps",
    ),
    (
        "circuit_breaker",
        "price",
        eth(1),
        CB_P,
        market(price_usd=42.5),
        ("price_below_floor",),
        "price of 42.5 USD is below the floor of 100 USD",
    ),
    (
        "circuit_breaker",
        "rate",
        eth(1),
        CB_P,
        market(transfers_last_hour=30),
        ("rate_limit_exceeded",),
        "30 transfers in the last hour plus this one exceed the limit of 30",
    ),
    (
        "circuit_breaker",
        "burst",
        eth(50 * ETH),
        CB_P,
        market(large_transfers_last_hour=9),
        ("burst_of_large_transfers",),
        "9 large transfers in the last hour plus this one exceed the limit of 9",
    ),
    (
        "circuit_breaker",
        "missing",
        eth(1),
        CB_P,
        market(volatility_bps="high"),
        ("market_data_missing",),
        "market feed returned no usable data",
    ),
]
