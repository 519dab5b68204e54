"""Who is asking and what they may do: the query API's access decision, kept apart from Flask so it is plain
functions and one class that tests can call with a dict of headers.

A request is either *keyed* (`Authorization: Bearer <key>` or `X-API-Key: <key>`) or *public*. A key that is sent
but wrong is always refused, never treated as public: a client that meant to authenticate must hear that it failed.
Keyed callers are limited per key (`key:<id>`) at the key's own rate or `CMSRAG_RATE_KEY`; public callers per client
address (`ip:<addr>`) at `CMSRAG_RATE_PUBLIC`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from services.api.keys import ApiKey, authenticate
from services.api.ratelimit import Allowance, RateLimiter
from shared.db import Database
from shared.errors import AccessDenied
from shared.query_settings import QuerySettings, Rate

CORS_MAX_AGE = 3600  # seconds a browser may reuse a preflight; Chrome caps it at 7200
CORS_BASE = {
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type, Authorization, X-API-Key",
    "Access-Control-Expose-Headers": "Retry-After, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset",
    "Access-Control-Max-Age": str(CORS_MAX_AGE),
}


class Headers(Protocol):
    """Request headers: Werkzeug's `request.headers` or a plain dict (tests)."""

    def get(self, key: str, /) -> str | None: ...

    def items(self) -> Iterable[tuple[str, str]]: ...


NEEDS_KEY = "this API needs an API key: send Authorization: Bearer <key> (or X-API-Key: <key>)"


@dataclass(frozen=True)
class Caller:
    """The party behind a request: a key, or the public at `address` (`None` when unknown)."""

    key: ApiKey | None
    address: str | None

    @property
    def sites(self) -> tuple[str, ...] | None:
        """The sites this caller may read; `None` for all. Apply it as the filter when a request names no site."""
        return self.key.sites if self.key is not None else None

    def may_read(self, site: str | None) -> bool:
        return self.key is None or self.key.may_read(site)


class Access:
    """The decision for one deployment: `caller()`, then `authorize()` and `limit()`, and CORS headers."""

    def __init__(self, settings: QuerySettings, db: Database, limiter: RateLimiter | None = None) -> None:
        self.settings = settings
        self.db = db
        self.limiter = limiter or RateLimiter(db)

    def caller(self, headers: Headers, remote_addr: str | None) -> Caller:
        """Identify the caller, or `AccessDenied(401)` for a bad key or a missing key when the API is not public."""
        raw = presented_key(headers)
        address = client_address(headers, remote_addr, self.settings.trust_proxy_hops)
        if raw is None:
            if not self.settings.public_access:
                raise AccessDenied(NEEDS_KEY)
            return Caller(None, address)
        with self.db.connection() as conn:
            return Caller(authenticate(conn, raw), address)

    def authorize(self, caller: Caller, site: str | None) -> tuple[str, ...] | None:
        """The sites to search: `(site,)` if the caller may read it (else `AccessDenied(403)`), or with no site
        asked for, every site the caller may read (`None`: all of them)."""
        if site is None:
            return caller.sites
        if not caller.may_read(site):
            allowed = ", ".join(caller.sites or ())
            raise AccessDenied(f"this API key may not read site {site!r}; it may read: {allowed}", status=403)
        return (site,)

    def limit(self, caller: Caller) -> Allowance:
        """Count the request against the caller's bucket; `RateLimited` when over."""
        if caller.key is None:
            return self.limiter.check(address_bucket(caller.address), self.settings.public_rate)
        return self.limiter.check(f"key:{caller.key.id}", key_rate(caller.key, self.settings.key_rate))

    def cors_headers(self, origin: str | None) -> dict[str, str]:
        return cors_headers(origin, self.settings.allowed_origins)


def key_rate(key: ApiKey, default: Rate) -> Rate:
    """The key's own rate; keys.create_key stores only parseable rates, so the fallback is for hand edits."""
    if key.rate is None:
        return default
    try:
        return Rate.parse(key.rate)
    except ValueError:
        return default


def header(headers: Headers, name: str) -> str | None:
    """A header by name, case-insensitively, from Werkzeug's headers or a plain dict."""
    value = headers.get(name)
    if value is None:
        lower = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lower), None)
    return value


def presented_key(headers: Headers) -> str | None:
    """The key a request sends, `None` if it sends none. An `Authorization` of another scheme (Basic…) is left
    alone: it may belong to a proxy in front of us. Two different keys are refused rather than one picked."""
    auth = header(headers, "Authorization")
    bearer = None
    if auth is not None:
        scheme, _, token = auth.strip().partition(" ")
        bearer = token.strip() if scheme.lower() == "bearer" else None
    x_key = header(headers, "X-API-Key")
    x_key = x_key.strip() if x_key is not None else None
    if bearer is not None and x_key is not None and bearer != x_key:
        raise AccessDenied("two different API keys sent (Authorization and X-API-Key): send one")
    key = bearer if bearer is not None else x_key
    if key == "":
        raise AccessDenied("empty API key: send Authorization: Bearer <key>")
    return key


def client_address(headers: Headers, remote_addr: str | None, trust_proxy_hops: int) -> str | None:
    """The client's address for public rate limits.

    Anyone can send `X-Forwarded-For: <anything>`; only entries appended by our own proxies are true. With
    `trust_proxy_hops=N` the N rightmost entries were written by our N proxies, and the Nth from the right is the
    address the outermost one saw: the client. Entries further left are the client's own claims, so trusting
    them (or `0` hops behind a proxy) would let one client pose as many and escape its limit. A header shorter
    than N, or a junk entry, means the request did not come through our proxies: use the socket's address.
    """
    if trust_proxy_hops > 0:
        chain = [part.strip() for part in (header(headers, "X-Forwarded-For") or "").split(",") if part.strip()]
        if len(chain) >= trust_proxy_hops:
            candidate = _parse_ip(chain[-trust_proxy_hops])
            if candidate is not None:
                return str(candidate)
    return remote_addr


def address_bucket(address: str | None) -> str:
    """`ip:<addr>`; IPv6 clients by their /64, since one household or server gets a whole /64 to rotate through."""
    ip = _parse_ip(address) if address else None
    if ip is None:
        return "ip:unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return f"ip:{ip.ipv4_mapped}"
        return f"ip:{ipaddress.IPv6Network((ip, 64), strict=False)}"
    return f"ip:{ip}"


def _parse_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address as proxies write it: bare, `1.2.3.4:port` or `[v6]:port`."""
    value = value.strip()
    if value.startswith("["):
        value = value[1:].partition("]")[0]
    elif value.count(":") == 1:
        value = value.partition(":")[0]
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def cors_headers(origin: str | None, allowed_origins: tuple[str, ...]) -> dict[str, str]:
    """CORS headers for the embeddable widget. `*` allows any page (no cookies are used, so no credentials are
    exposed); otherwise only listed origins get `Access-Control-Allow-Origin`, and `Vary: Origin` is always sent
    so a shared cache never hands one origin's answer to another."""
    if "*" in allowed_origins:
        return {"Access-Control-Allow-Origin": "*", **CORS_BASE}
    allowed = {o.lower().rstrip("/") for o in allowed_origins}
    if origin is None or origin.lower().rstrip("/") not in allowed:
        return {"Vary": "Origin"}
    return {"Access-Control-Allow-Origin": origin, "Vary": "Origin", **CORS_BASE}
