"""Observed operator location: socket host → IP (literal, or resolved with a time limit) → country and ASN from the
offline IP database shipped in the geoip2fast package → cloud provider from the ASN's name (data/geo/providers.json)."""

from __future__ import annotations

import ipaddress
import json
import re
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from app.errors import LensError

ROOT = Path(__file__).resolve().parent.parent
GEO_DIR = ROOT / "data" / "geo"
DEPLOYMENTS_DIR = ROOT / "data" / "deployments"
RESOLVE_MODES = ("auto", "on", "off")

# What an observed location can be; every state is an answer, none is an error.
STATES = {
    "located": "located from its IP",
    "private": "a private or reserved address: it has no public location",
    "not_in_database": "a public address the offline IP database does not place",
    "unresolved": "its hostname could not be resolved",
    "resolution_off": "its hostname was not resolved (name resolution is off)",
    "no_socket": "no socket announced",
    "bad_socket": "the socket is not host:port",
}


@dataclass(frozen=True)
class ResolveOptions:
    """How hostnames become IPs: 'off', or 'on' (the system resolver, `timeout_s` per name); `table` (a local
    host → IP table) answers instead of any resolver when given, so tests never send a DNS query."""

    mode: str = "off"
    timeout_s: float = 1.0
    table: Mapping[str, str] | None = None


NO_RESOLUTION = ResolveOptions()  # IP literals only: no name is ever looked up


@dataclass(frozen=True)
class Observed:
    """Where an operator's socket points: the IP and what the offline database says about it (empty when unknown)."""

    socket: str
    host: str
    ip: str
    state: str  # one of STATES
    detail: str  # a sentence for people
    country: str = ""
    asn: str = ""  # "AS16509" when the ASN's name is in the mapping table, else ""
    asn_name: str = ""  # the network's name as the database gives it, e.g. AMAZON-02
    provider: str = ""

    @property
    def located(self) -> bool:
        """Whether a country (and perhaps an ASN) was found."""
        return self.state == "located"

    @property
    def network(self) -> str:
        """The ASN as a dimension value: 'AS16509 AMAZON-02', or the network's name alone, or ''."""
        return " ".join(x for x in (self.asn, self.asn_name) if x)


def resolve_mode(setting: str, chain_id: int | None) -> str:
    """The effective resolution mode: 'auto' means on for the real deployments' chains, off anywhere else (the devnet
    and synthetic DBs, whose hostnames are made up)."""
    mode = str(setting or "auto").strip().lower()
    if mode not in RESOLVE_MODES:
        raise LensError(f"resolve_hostnames is {setting!r}", "use auto, on or off (env LENS_RESOLVE_HOSTNAMES)")
    if mode != "auto":
        return mode
    return "on" if chain_id is not None and int(chain_id) in _real_chain_ids() else "off"


@cache
def _real_chain_ids() -> frozenset[int]:
    ids = set()
    for path in DEPLOYMENTS_DIR.glob("*.json"):
        try:
            ids.add(int(json.loads(path.read_text())["chain_id"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return frozenset(ids)


# ---------------------------------------------------------------------------------------------
# Tables


@cache
def _providers() -> dict[str, Any]:
    return json.loads((GEO_DIR / "providers.json").read_text())


@cache
def _countries() -> dict[str, dict[str, Any]]:
    return json.loads((GEO_DIR / "countries.json").read_text())["countries"]


def continent(country: str) -> str:
    """The continent of an ISO country code ('' when unknown)."""
    return str(_countries().get(str(country or "").upper(), {}).get("continent", ""))


def centroid(country: str) -> tuple[float, float] | None:
    """An approximate (lat, lon) of a country, for the map (None when the table has none)."""
    c = _countries().get(str(country or "").upper(), {})
    return (float(c["lat"]), float(c["lon"])) if "lat" in c else None


def provider_of_asn_name(asn_name: str) -> tuple[str, str]:
    """(provider, 'AS<number>') of an ASN organisation name; ('', '') when the table does not know it."""
    name = str(asn_name or "").strip()
    if not name:
        return "", ""
    table = _providers()
    hit = table["asn_names"].get(name)
    if hit:
        return str(hit["provider"]), f"AS{int(hit['asn'])}"
    low = name.lower()
    for needle, provider in table["substrings"].items():
        if needle in low:
            return str(provider), ""
    return "", ""


def canonical_provider(name: str) -> str:
    """A declared provider name in the table's canonical spelling ('ovh' → 'OVHcloud'); as given when unknown."""
    text = str(name or "").strip()
    return str(_providers()["aliases"].get(text.lower(), text))


ASN_RE = re.compile(r"^\s*(?:AS)?\s*(\d+)\b", re.IGNORECASE)


def asn_number(text: str) -> str:
    """'AS16509' from 'AS16509 Amazon.com, Inc.' or '16509'; '' when there is no number."""
    m = ASN_RE.match(str(text or ""))
    return f"AS{int(m.group(1))}" if m else ""


# ---------------------------------------------------------------------------------------------
# Socket → host → IP


def socket_host(sock: str) -> str:
    """The host part of an operator socket ('1.2.3.4:9000', 'node.example.com:9000', 'https://…', '[2001:db8::1]:9000');
    LensError when there is none."""
    text = str(sock or "").strip()
    if not text:
        raise LensError("empty socket")
    try:
        ipaddress.ip_address(text)  # a bare IPv6 literal has colons but no port
        return text
    except ValueError:
        pass
    parts = urlsplit(text if "//" in text else "//" + text)
    try:
        host = parts.hostname
        _ = parts.port  # raises on a malformed port
    except ValueError as err:
        raise LensError(f"socket {text!r} is not host:port ({err})") from None
    if not host:
        raise LensError(f"socket {text!r} has no host")
    return host


def _ip_literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


def resolve(host: str, options: ResolveOptions) -> tuple[str, str]:
    """(ip, '') for a host, or ('', why not): IP literals as they are; then the local table if given; then the system
    resolver under a time limit when resolution is on."""
    literal = _ip_literal(host)
    if literal:
        return literal, ""
    if options.table is not None:
        ip = options.table.get(host.lower()) or options.table.get(host)
        why = getattr(options.table, "why", {}).get(host.lower()) or f"{host} is not in the local name table"
        return (ip, "") if ip else ("", why)
    if options.mode != "on":
        return "", ""
    return _system_resolve(host, float(options.timeout_s))


def _system_resolve(host: str, timeout_s: float) -> tuple[str, str]:
    """getaddrinfo in a daemon thread, abandoned after timeout_s (the resolver itself cannot be interrupted)."""
    return _system_resolve_many([host], timeout_s)[host]


def _system_resolve_many(hosts: list[str], timeout_s: float) -> dict[str, tuple[str, str]]:
    """Resolve several hostnames at once, each in a daemon thread; all of them within one `timeout_s`."""
    boxes: dict[str, dict[str, Any]] = {h: {} for h in dict.fromkeys(hosts)}

    def run(host: str, box: dict[str, Any]) -> None:
        try:
            infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
            box["ips"] = [i[4][0] for i in infos]
        except OSError as err:
            box["error"] = err

    workers = {h: threading.Thread(target=run, args=(h, b), daemon=True, name=f"resolve {h}") for h, b in boxes.items()}
    for w in workers.values():
        w.start()
    deadline = time.monotonic() + timeout_s
    out: dict[str, tuple[str, str]] = {}
    for host, worker in workers.items():
        worker.join(max(0.0, deadline - time.monotonic()))
        box = boxes[host]
        if worker.is_alive():
            out[host] = ("", f"resolving {host} took longer than {timeout_s:g} s")
        elif "error" in box:
            out[host] = ("", f"{host} does not resolve ({box['error']})")
        else:
            ips = box.get("ips") or []
            v4 = [ip for ip in ips if ":" not in ip]
            out[host] = ((v4 or ips)[0], "") if ips else ("", f"{host} resolves to no address")
    return out


def prefetch(sockets: list[str], options: ResolveOptions) -> ResolveOptions:
    """Options whose local table already holds every hostname of `sockets` resolved at once (system resolver, one
    `timeout_s` for all); failures are kept and reported per socket by `locate`. Unchanged when resolution is off or
    a table is given."""
    if options.mode != "on" or options.table is not None:
        return options
    hosts = []
    for sock in sockets:
        try:
            host = socket_host(sock)
        except LensError:
            continue
        if _ip_literal(host) is None:
            hosts.append(host)
    if not hosts:
        return options
    found = _system_resolve_many(hosts, float(options.timeout_s))
    return ResolveOptions(options.mode, options.timeout_s, _Resolved(found))


class _Resolved(dict):
    """A name table from a prefetch: host → IP, and why a host has none."""

    def __init__(self, found: dict[str, tuple[str, str]]) -> None:
        super().__init__({h.lower(): ip for h, (ip, _why) in found.items() if ip})
        self.why = {h.lower(): why for h, (ip, why) in found.items() if not ip}


# ---------------------------------------------------------------------------------------------
# IP → country, ASN, provider


@cache
def _database(ipv6: bool) -> Any:
    """The geoip2fast reader over its packaged country+ASN data file (loaded once; never downloads)."""
    from geoip2fast import GeoIP2Fast

    name = "geoip2fast-asn-ipv6.dat.gz" if ipv6 else "geoip2fast-asn.dat.gz"
    return GeoIP2Fast(geoip2fast_data_file=name, verbose=False)


@lru_cache(maxsize=4096)
def lookup_ip(ip: str) -> tuple[str, str, str]:
    """(state, country, asn_name) of one IP address from the offline database."""
    addr = ipaddress.ip_address(ip)
    if not addr.is_global:
        return "private", "", ""
    r = _database(addr.version == 6).lookup(str(addr))
    country = str(getattr(r, "country_code", "") or "")
    if len(country) != 2 or not country.isalpha():
        return "not_in_database", "", ""
    return "located", country.upper(), str(getattr(r, "asn_name", "") or "")


def locate(sock: str | None, options: ResolveOptions = NO_RESOLUTION) -> Observed:
    """The observed location of an operator socket (every outcome is a state, never an exception)."""
    text = str(sock or "").strip()
    if not text:
        return Observed(text, "", "", "no_socket", "No socket announced.")
    try:
        host = socket_host(text)
    except LensError as err:
        return Observed(text, "", "", "bad_socket", f"The socket is not host:port: {err}.")
    ip, why = resolve(host, options)
    if not ip:
        if why:
            return Observed(text, host, "", "unresolved", f"Its hostname could not be resolved: {why}.")
        return Observed(text, host, "", "resolution_off", f"Hostname {host} not resolved: name resolution is off.")
    state, country, asn_name = lookup_ip(ip)
    if state == "private":
        return Observed(text, host, ip, "private", f"{ip} is a private or reserved address: no public location.")
    if state == "not_in_database":
        return Observed(text, host, ip, state, f"The offline IP database does not place {ip}.")
    provider, asn = provider_of_asn_name(asn_name)
    where = " ".join(x for x in (asn, asn_name) if x) or "an unnamed network"
    return Observed(text, host, ip, "located", f"{ip} is in {where}, {country}.", country, asn, asn_name, provider)


# ---------------------------------------------------------------------------------------------
# Declared (metadata) against observed (IP)


def disagreements(declared: Mapping[str, Any], observed: Observed) -> list[str]:
    """Which of country, provider and ASN the metadata declares differently from what the IP says ([] when they agree
    or either side is unknown)."""
    if not observed.located:
        return []
    out = []
    d_country = str(declared.get("country") or "").strip().upper()
    if d_country and d_country != observed.country:
        out.append("country")
    d_provider = canonical_provider(str(declared.get("provider") or ""))
    if d_provider and observed.provider and d_provider.lower() != observed.provider.lower():
        out.append("provider")
    d_asn = asn_number(str(declared.get("asn") or ""))
    if d_asn and observed.asn and d_asn != observed.asn:
        out.append("asn")
    return out


def disagreement_sentence(declared: Mapping[str, Any], observed: Observed) -> str:
    """'declares Frankfurt am Main, DE (AWS, AS16509); its IP 52.94.0.13 is in AS16509 AMAZON-02, US' or ''."""
    if not disagreements(declared, observed):
        return ""
    place = ", ".join(str(x) for x in (declared.get("city"), declared.get("country")) if x)
    infra = ", ".join(x for x in (str(declared.get("provider") or ""), asn_number(str(declared.get("asn") or ""))) if x)
    said = place + (f" ({infra})" if infra else "")
    return f"declares {said}; its IP {observed.ip} is in {observed.network or 'an unnamed network'}, {observed.country}"
