"""Simulated data providers (sanctions list, KYC registry, market feed, spend ledger) → the oracle outputs of a task."""

from __future__ import annotations

import json
import math
import random
import time
from bisect import bisect_left, bisect_right
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from devnet import scenario
from devnet.scenario import ETH, PERSONAS, Persona

DAY = 86_400
HOUR = 3_600
SLOT = 300  # the market feed publishes every 5 minutes
ORACLE_ERROR_RATE = 0.002  # a provider occasionally times out: the policy must fail closed
ORACLE_ERRORS = ("upstream timeout", "feed stale", "rate limited by provider")

# ------------------------------------------------------------------------------------------- intent helpers


def call_parts(intent: Any) -> tuple[str, list[Any]]:
    """(function name, decoded args) of an engine Intent, decoded the way the policies see them."""
    from app.engine.intent import decode_call

    decoded = decode_call(bytes(intent.function_signature), bytes(intent.data))
    fn = decoded["function"]
    return (fn["name"] if fn else ""), decoded["decoded_function_arguments"]


def moved_amount(fname: str, args: list[Any], value: int) -> int:
    """The amount an intent moves, as the spending and circuit-breaker policies count it."""
    if fname in ("transfer", "approve", "swap"):
        return int(args[1])
    if fname == "transferFrom":
        return int(args[2])
    return int(value)


def counterparty_of(fname: str, args: list[Any], to: str) -> str:
    """Who receives value, as the screening policy sees it: recipient/spender of token calls, else the target."""
    if fname in ("transfer", "approve"):
        return str(args[0]).lower()
    if fname == "transferFrom":
        return str(args[1]).lower()
    return to.lower()


# -------------------------------------------------------------------------------------------- market feed


class MarketFeed:
    """A deterministic ETH/USD feed: 5-minute price and 1h realised volatility (bps), calm and stressed regimes."""

    def __init__(self, seed: int, start: int) -> None:
        self.rng = random.Random(f"market:{seed}")
        self.start = start
        self.prices: list[float] = []
        self.vols: list[int] = []
        self._price = 3000.0 + self.rng.uniform(-250, 250)
        self._stress_left = 0
        self._crash_left = 0

    def _extend(self, slot: int) -> None:
        """Generate the path up to `slot` (sequentially, so the path depends only on the seed)."""
        rng = self.rng
        while len(self.prices) <= slot:
            if self._stress_left == 0 and rng.random() < 0.0035:  # ~1 stressed episode a day
                self._stress_left = rng.randint(12, 48)  # 1–4 hours
                if rng.random() < 0.15:  # a flash crash inside some episodes
                    self._crash_left = rng.randint(6, 15)
                    self._price *= rng.uniform(0.62, 0.72)
            if self._stress_left:
                self._stress_left -= 1
                vol = rng.gauss(1050, 260)
            else:
                vol = rng.gauss(190, 70)
            vol = max(35.0, vol)
            if self._crash_left:
                self._crash_left -= 1
                if self._crash_left == 0:
                    self._price /= rng.uniform(0.66, 0.74)  # the crash recovers
            sigma = vol / 10_000 / math.sqrt(12)  # per 5-minute step
            self._price *= math.exp(rng.gauss(0.0, sigma))
            self.prices.append(round(self._price, 2))
            self.vols.append(int(round(vol)))

    def at(self, t: int) -> tuple[float, int]:
        """(price_usd, volatility_bps) published for time t."""
        slot = max(0, (t - self.start) // SLOT)
        self._extend(slot)
        return self.prices[slot], self.vols[slot]


# -------------------------------------------------------------------------------------------- spend ledger


class Ledger:
    """What each sender executed on each client (spent attestations): the source of spend-so-far and rate counts."""

    def __init__(self) -> None:
        self.times: dict[tuple[str, str], list[int]] = defaultdict(list)
        self.amounts: dict[tuple[str, str], list[int]] = defaultdict(list)
        self.large: dict[tuple[str, str], list[int]] = defaultdict(list)  # times of large executions

    def record(self, key: tuple[str, str], t: int, amount: int, counts_as_spend: bool, large: bool) -> None:
        """Record one executed intent of (client, sender) (times arrive in non-decreasing order)."""
        self.times[key].append(t)
        self.amounts[key].append(amount if counts_as_spend else 0)
        if large:
            self.large[key].append(t)

    def spent(self, key: tuple[str, str], t: int, since: int) -> int:
        """Sum executed in [since, t), exact."""
        times = self.times[key]
        lo, hi = bisect_left(times, since), bisect_left(times, t)
        return sum(self.amounts[key][lo:hi])

    def count(self, key: tuple[str, str], t: int, window: int = HOUR) -> int:
        """Executions in (t - window, t)."""
        times = self.times[key]
        return bisect_left(times, t) - bisect_right(times, t - window)

    def count_large(self, key: tuple[str, str], t: int, window: int = HOUR) -> int:
        """Large executions in (t - window, t)."""
        times = self.large[key]
        return bisect_left(times, t) - bisect_right(times, t - window)


# -------------------------------------------------------------------------------------------- params


# ----------------------------------------------------------------------------------------- the providers


@dataclass(frozen=True)
class OracleCall:
    """One PolicyData entry's inputs and output: the pack, its wasmArgs JSON and its output JSON (both UTF-8)."""

    pack: str
    wasm_args: bytes
    data: bytes


def _json(doc: Any) -> bytes:
    """Compact, key-sorted JSON bytes (what the oracle returns and what is recorded on chain)."""
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


class Providers:
    """All simulated data providers of one run, answering for a task at a simulated time."""

    def __init__(self, seed: int, start: int, span: int, persona_addresses: dict[str, str]) -> None:
        self.seed = seed
        self.start = start
        self.span = max(span, 1)
        self.market = MarketFeed(seed, start)
        self.ledger = Ledger()
        self.rng = random.Random(f"providers:{seed}")
        self.by_address: dict[str, Persona] = {
            persona_addresses[p.name].lower(): p for p in PERSONAS if p.name in persona_addresses
        }

    # -- individual packs

    def sanctions(self, address: str) -> dict[str, Any]:
        """Screening result for an address: sanctioned flag, risk flags and a 0–10 risk score."""
        cp = scenario.BY_ADDRESS.get(address.lower())
        version = "OFAC-SDN-2026-11-28"
        if cp is None:  # an address nobody has seen: low risk, unflagged
            return {
                "address": address.lower(),
                "sanctioned": False,
                "flags": [],
                "risk_score": 20,
                "list_version": version,
            }
        return {
            "address": address.lower(),
            "sanctioned": cp.sanctioned,
            "flags": list(cp.flags),
            "risk_score": cp.risk_score * 10,
            "list_version": version,
        }

    def kyc(self, address: str, t: int) -> dict[str, Any]:
        """The KYC registry's record of a sender at time t (checked_at = t)."""
        p = self.by_address.get(address.lower())
        if p is None or p.kyc_status == "none":
            return {
                "address": address.lower(),
                "status": "none",
                "country": "",
                "expires_at": 0,
                "checked_at": t,
                "provider": "devnet-kyc",
            }
        expires = t + 400 * DAY
        if p.kyc_expires_frac is not None:
            expires = self.start + int(p.kyc_expires_frac * self.span)
            if p.kyc_renewed_frac is not None and t >= self.start + int(p.kyc_renewed_frac * self.span):
                expires = self.start + int(p.kyc_renewed_frac * self.span) + 365 * DAY
        return {
            "address": address.lower(),
            "status": p.kyc_status,
            "country": p.country,
            "expires_at": expires,
            "checked_at": t,
            "level": "basic" if p.kind == "member" else "kyb",
            "provider": "devnet-kyc",
        }

    def market_data(self, key: tuple[str, str], asset: str, t: int) -> dict[str, Any]:
        """ETH/USD price, realised volatility and the sender's executions on the client in the last hour."""
        price, vol = self.market.at(t)
        return {
            "asset": asset,
            "price_usd": price,
            "volatility_bps": vol,
            "transfers_last_hour": self.ledger.count(key, t),
            "large_transfers_last_hour": self.ledger.count_large(key, t),
            "as_of": t,
        }

    def spend(self, key: tuple[str, str], t: int) -> dict[str, Any]:
        """What the sender already spent on the client today (UTC day, before t), exact wei string."""
        day_start = t - t % DAY
        return {
            "spent_today_wei": str(self.ledger.spent(key, t, day_start)),
            "day": time.strftime("%Y-%m-%d", time.gmtime(t)),
            "as_of": t,
        }

    # -- one task

    def outputs(
        self, client: str, client_address: str, packs: tuple[str, ...], intent: Any, t: int, params: dict[str, Any]
    ) -> list[OracleCall]:
        """The oracle calls of one task, in the policy's PolicyData order."""
        fname, args = call_parts(intent)
        key = (client, intent.from_.lower())
        calls = []
        for pack in packs:
            if pack == "sanctions":
                who = counterparty_of(fname, args, intent.to)
                wasm_args, out = {"address": who}, self.sanctions(who)
            elif pack == "kyc":
                who = intent.from_.lower()
                wasm_args, out = {"address": who}, self.kyc(who, t)
            elif pack == "market":
                asset = "eth" if fname in ("", "swap") else intent.to.lower()
                wasm_args = {"asset": asset, "client": client_address.lower(), "sender": key[1]}
                out = self.market_data(key, asset, t)
            elif pack == "spend":
                wasm_args = {"client": client_address.lower(), "sender": key[1]}
                out = self.spend(key, t)
            else:
                wasm_args, out = {}, {"error": f"unknown data provider {pack}"}
            if self.rng.random() < ORACLE_ERROR_RATE:
                out = {"error": self.rng.choice(ORACLE_ERRORS)}
            calls.append(OracleCall(pack, _json(wasm_args), _json({pack: out})))
        return calls

    def record_execution(self, client: str, t: int, intent: Any, params: dict[str, Any]) -> None:
        """Tell the ledger an intent was executed (approvals do not move funds, so they are not spend)."""
        fname, args = call_parts(intent)
        amount = moved_amount(fname, args, intent.value)
        large_wei = int(params.get("large_transfer_wei", str(50_000 * ETH)))
        self.ledger.record((client, intent.from_.lower()), t, amount, fname != "approve", amount >= large_wei)
