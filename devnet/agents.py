"""Agent personas generate intents (transfers, swaps, approvals in ETH and dUSD) with a realistic share of violations."""

from __future__ import annotations

import heapq
import math
import random
from dataclasses import dataclass

import eth_abi
from eth_account import Account
from eth_utils import keccak

from app.engine import Intent
from devnet import scenario
from devnet.scenario import PERSONAS, Persona

ETH_SENTINEL = "0xeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"  # tokenIn/out = native ETH in router calls
MAX_UINT = 2**256 - 1
SIG_TRANSFER = "transfer(address,uint256)"
SIG_APPROVE = "approve(address,uint256)"
SIG_SWAP = "swap(address,uint256,address,uint256)"


@dataclass(frozen=True)
class PlannedIntent:
    """One intent an agent or human wants executed, at a simulated time, with what it was trying to do."""

    seq: int
    t: int  # simulated unix time of the request
    persona: str
    client: str
    intent: Intent
    asset: str  # 'ETH' | 'dUSD'
    amount: int  # wei moved (or approved)
    counterparty: str
    note: str  # what the agent was doing ('rebalance', 'burst', 'payroll-run', 'oversized', …)
    executes: bool  # whether the agent executes it if allowed (False → the attestation expires unspent)


def persona_key(role: str, seed: int, i: int) -> str:
    """The deterministic private key of the i-th persona of a role (`keccak256(f"{role}:{seed}:{i}")`)."""
    return "0x" + keccak(text=f"{role}:{seed}:{i}").hex()


def persona_accounts(seed: int) -> dict[str, tuple[str, str]]:
    """name → (address lower-case, private key) for every persona; agents and humans are numbered per role."""
    out: dict[str, tuple[str, str]] = {}
    counters = {"agent": 0, "human": 0}
    for p in PERSONAS:
        i = counters[p.role]
        counters[p.role] += 1
        key = persona_key(p.role, seed, i)
        out[p.name] = (Account.from_key(key).address.lower(), key)
    return out


def _call(sig: str, types: list[str], values: list) -> bytes:
    """Calldata: selector of `sig` + ABI-encoded arguments."""
    return keccak(text=sig)[:4] + eth_abi.encode(types, values)


def _wei(rng: random.Random, units: float) -> int:
    """An amount of about `units` tokens with full 18-decimal precision (almost always above 2^53 wei)."""
    whole = max(units, 1e-6)
    return int(whole * 10**6) * 10**12 + rng.randrange(10**12)


def _lognormal(rng: random.Random, median: float, sigma: float) -> float:
    """A log-normal draw with the given median."""
    return median * math.exp(rng.gauss(0.0, sigma))


class IntentFactory:
    """Builds engine Intents for the devnet's token and router."""

    def __init__(self, token: str, chain_id: int) -> None:
        self.token = token.lower()
        self.chain_id = chain_id

    def eth(self, sender: str, to: str, amount: int) -> Intent:
        """A plain ETH transfer from the vault."""
        return Intent(sender, to, amount, b"", self.chain_id, b"")

    def token_transfer(self, sender: str, to: str, amount: int) -> Intent:
        """dUSD transfer(to, amount) from the vault."""
        return Intent(
            sender,
            self.token,
            0,
            _call(SIG_TRANSFER, ["address", "uint256"], [to, amount]),
            self.chain_id,
            SIG_TRANSFER.encode(),
        )

    def approve(self, sender: str, spender: str, amount: int) -> Intent:
        """dUSD approve(spender, amount) from the vault."""
        return Intent(
            sender,
            self.token,
            0,
            _call(SIG_APPROVE, ["address", "uint256"], [spender, amount]),
            self.chain_id,
            SIG_APPROVE.encode(),
        )

    def swap(self, sender: str, sell_eth: bool, amount_in: int, min_out: int) -> Intent:
        """Router swap(tokenIn, amountIn, tokenOut, minOut); selling ETH sends amountIn as value."""
        token_in, token_out = (ETH_SENTINEL, self.token) if sell_eth else (self.token, ETH_SENTINEL)
        data = _call(SIG_SWAP, ["address", "uint256", "address", "uint256"], [token_in, amount_in, token_out, min_out])
        return Intent(
            sender, scenario.SWAP_ROUTER, amount_in if sell_eth else 0, data, self.chain_id, SIG_SWAP.encode()
        )


def _diurnal(p: Persona, t: int) -> float:
    """Relative activity by hour of day (UTC): humans by day, payroll in office hours, bots around the clock."""
    hour = (t // 3600) % 24
    if p.kind in ("human", "member"):
        return 1.0 if 7 <= hour < 22 else 0.15
    if p.kind in ("payroll", "payments"):
        return 1.0 if 6 <= hour < 19 else 0.3
    return 0.8 + 0.2 * math.sin(hour / 24 * 2 * math.pi)


def _cp(label: str) -> str:
    return scenario.counterparty(label).address


class _Gen:
    """The stateful generator behind `plan_intents` (one random stream, one heap of scheduled follow-ups)."""

    def __init__(self, seed: int, start: int, token: str, chain_id: int) -> None:
        self.rng = random.Random(f"agents:{seed}")
        self.start = start
        self.f = IntentFactory(token, chain_id)
        self.accounts = persona_accounts(seed)
        self.scheduled: list[tuple[int, int, str, str]] = []  # (t, tiebreak, persona, note)
        self.tiebreak = 0

    def schedule(self, t: int, persona: str, note: str) -> None:
        """Queue a follow-up intent of `persona` at time t (bursts, payroll runs)."""
        self.tiebreak += 1
        heapq.heappush(self.scheduled, (t, self.tiebreak, persona, note))

    # -- one intent per persona kind: returns (intent, asset, amount, counterparty, note)

    def treasury(self, p: Persona, sender: str, t: int, note: str):
        """Rebalancing: dUSD/ETH to cold storage, exchanges, staking, lending; approvals; the odd disallowed swap."""
        r = self.rng
        x = r.random()
        if x < 0.62:
            dest = r.choice(["treasury-cold-storage", "coinbase-prime-deposit", "kraken-deposit", "aave-v3-pool"])
            units = _lognormal(r, 9_000, 1.1)
            if r.random() < 0.035:
                units, note = r.uniform(410_000, 1_400_000), "oversized-rebalance"
            amount = _wei(r, units)
            return self.f.token_transfer(sender, _cp(dest), amount), "dUSD", amount, _cp(dest), note
        if x < 0.84:
            dest = r.choice(["lido-staking", "treasury-cold-storage", "coinbase-prime-deposit"])
            amount = _wei(r, _lognormal(r, 6, 1.0))
            return self.f.eth(sender, _cp(dest), amount), "ETH", amount, _cp(dest), note
        if x < 0.96:
            spender = _cp("aave-v3-pool")
            if r.random() < 0.25:
                amount, note = MAX_UINT, "unlimited-approval"
            else:
                amount = _wei(r, _lognormal(r, 60_000, 0.9))
            return self.f.approve(sender, spender, amount), "dUSD", amount, spender, note
        amount = _wei(r, _lognormal(r, 20_000, 0.6))
        return self.f.swap(sender, False, amount, 0), "dUSD", amount, scenario.SWAP_ROUTER, "swap-not-allowed"

    def trader(self, p: Persona, sender: str, t: int, note: str):
        """Router swaps both ways, router approvals, and now and then a burst of large swaps within an hour."""
        r = self.rng
        if note == "burst" or (note == "" and r.random() < 0.006):
            if note == "":  # start a burst: this one and eleven more large swaps within the hour
                at = t
                for _ in range(11):
                    at += r.randint(120, 320)
                    self.schedule(at, p.name, "burst")
                note = "burst"
            amount = _wei(r, r.uniform(55_000, 180_000))
            return self.f.swap(sender, False, amount, 0), "dUSD", amount, scenario.SWAP_ROUTER, note
        x = r.random()
        if x < 0.55:
            amount = _wei(r, _lognormal(r, 6_000, 1.2))
            return self.f.swap(sender, False, amount, 0), "dUSD", amount, scenario.SWAP_ROUTER, note
        if x < 0.92:
            amount = _wei(r, _lognormal(r, 2.5, 1.1))
            return self.f.swap(sender, True, amount, 0), "ETH", amount, scenario.SWAP_ROUTER, note
        amount = _wei(r, _lognormal(r, 200_000, 0.5))
        return self.f.approve(sender, scenario.SWAP_ROUTER, amount), "dUSD", amount, scenario.SWAP_ROUTER, note

    def payroll(self, p: Persona, sender: str, t: int, note: str):
        """Salaries and contractor payments in dUSD (in payroll runs), some to unlisted or flagged payees."""
        r = self.rng
        if note == "" and r.random() < 0.03:  # a payroll run: 6–10 payments within ten minutes
            at = t
            for _ in range(r.randint(5, 9)):
                at += r.randint(20, 90)
                self.schedule(at, p.name, "payroll-run")
            note = "payroll-run"
        x = r.random()
        if x < 0.78:
            who = r.choice(["employee-ana", "employee-ben", "employee-chen", "employee-dara", "employee-eli"])
            units = r.uniform(2_500, 14_000)
        elif x < 0.90:
            who = r.choice(["contractor-gosia", "contractor-hugo"])
            units = r.uniform(800, 9_000)
        elif x < 0.95:
            who = "contractor-kemi"  # allowlisted only from params version 1
            units = r.uniform(800, 5_000)
        elif x < 0.98:
            who = "contractor-unknown"
            units = r.uniform(500, 4_000)
        else:
            who = r.choice(["darknet-market-wallet", "mixer-tornado-fork"])
            units, note = r.uniform(300, 3_000), "compromised-payee"
        amount = _wei(r, units)
        return self.f.token_transfer(sender, _cp(who), amount), "dUSD", amount, _cp(who), note

    def payments(self, p: Persona, sender: str, t: int, note: str):
        """Vendor payments in dUSD and ETH; some to unvetted, blocklisted or sanctioned counterparties."""
        r = self.rng
        x = r.random()
        if x < 0.80:
            who = r.choice(
                [
                    "vendor-cloudhost",
                    "vendor-design-studio",
                    "vendor-legal-llp",
                    "vendor-data-feeds",
                    "merchant-coffee-roasters",
                ]
            )
        elif x < 0.89:
            who = "vendor-new-unvetted"
        elif x < 0.93:
            who = "otc-desk-unlisted"
        else:
            who = r.choice(["mixer-tornado-fork", "sanctioned-exchange-garantex", "darknet-market-wallet"])
            note = "sanctioned-counterparty"
        if r.random() < 0.25:
            amount = _wei(r, _lognormal(r, 0.8, 1.0))
            return self.f.eth(sender, _cp(who), amount), "ETH", amount, _cp(who), note
        amount = _wei(r, _lognormal(r, 1_800, 1.2))
        return self.f.token_transfer(sender, _cp(who), amount), "dUSD", amount, _cp(who), note

    def human(self, p: Persona, sender: str, t: int, note: str):
        """People sending ETH and dUSD to friends, landlords, shops and exchanges; now and then too much."""
        r = self.rng
        who = r.choice(["friend-maya", "landlord-nico", "sibling-omar", "merchant-bike-shop", "coinbase-prime-deposit"])
        if r.random() < 0.45:
            amount = _wei(r, _lognormal(r, 1.2, 1.2))
            return self.f.eth(sender, _cp(who), amount), "ETH", amount, _cp(who), note
        units = _lognormal(r, 3_000, 1.1)
        if p.kind == "human" and r.random() < 0.05:
            units, note = r.uniform(26_000, 60_000), "oversized"
        amount = _wei(r, units)
        return self.f.token_transfer(sender, _cp(who), amount), "dUSD", amount, _cp(who), note


def plan_intents(n: int, seed: int, start: int, token: str, chain_id: int) -> list[PlannedIntent]:
    """The first n intents of the run, in time order, deterministic for (seed, start, token, chain_id)."""
    g = _Gen(seed, start, token, chain_id)
    rng = g.rng
    total_rate = sum(p.rate_per_day for p in PERSONAS) / 86_400
    weights = [p.rate_per_day for p in PERSONAS]
    by_name = {p.name: p for p in PERSONAS}
    kinds = {
        "treasury": g.treasury,
        "trader": g.trader,
        "payroll": g.payroll,
        "payments": g.payments,
        "human": g.human,
        "member": g.human,
    }
    out: list[PlannedIntent] = []
    t_float = float(start)
    pending: tuple[int, Persona, str] | None = None
    while len(out) < n:
        if pending is None:  # next spontaneous request (thinned Poisson process with daily rhythm)
            while True:
                t_float += rng.expovariate(total_rate)
                p = rng.choices(PERSONAS, weights)[0]
                if rng.random() < _diurnal(p, int(t_float)):
                    break
            pending = (int(t_float), p, "")
        if g.scheduled and g.scheduled[0][0] <= pending[0]:
            t, _, name, note = heapq.heappop(g.scheduled)
            p = by_name[name]
        else:
            t, p, note = pending
            pending = None
        sender = g.accounts[p.name][0]
        intent, asset, amount, cp, note = kinds[p.kind](p, sender, t, note)
        executes = rng.random() >= p.abandon_rate
        out.append(PlannedIntent(len(out), t, p.name, p.client, intent, asset, amount, cp, note or "routine", executes))
    return out
