"""API keys for the query service: create, list, revoke, and check a key a request presents.

A key reads `cmsrag_<prefix>_<secret>`: the 8-character prefix is public (shown by `cmsrag keys list`, used to
find the row), the 43-character base62 secret carries 256 bits from `secrets`. Base62 rather than base64url so a
double-click selects the whole key. Only `sha256(key)` is stored: a slow password hash (bcrypt, argon2) exists to
protect guessable secrets, and 256 random bits cannot be guessed, so a fast hash loses nothing and keeps every
request's check to one indexed lookup plus one hash.

Validity is read from the database on every request, never cached in the process: a revoked key stops working on
every replica at once. `last_used_at` is written at most once a minute per key, so busy keys cost no writes.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from shared.errors import AccessDenied, CmsragError
from shared.query_settings import Rate

PREFIX_CHARS = string.ascii_lowercase + string.digits
SECRET_CHARS = string.ascii_letters + string.digits
PREFIX_LEN = 8
SECRET_LEN = 43  # 43 * log2(62) ≈ 256 bits
KEY_RE = re.compile(rf"cmsrag_([a-z0-9]{{{PREFIX_LEN}}})_([A-Za-z0-9]{{{SECRET_LEN}}})")
_COLUMNS = "id, prefix, name, sites, rate, created_at, last_used_at, revoked_at"


@dataclass(frozen=True)
class ApiKey:
    """A key's public record; the hash never leaves this module."""

    id: int
    prefix: str
    name: str
    sites: tuple[str, ...] | None  # None: every site
    rate: str | None  # None: the deployment's CMSRAG_RATE_KEY
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    def may_read(self, site: str | None) -> bool:
        """Whether this key may read `site`; `None` asks about every site at once, which a scoped key may not
        (the API then narrows the search to `sites` instead of refusing)."""
        if self.sites is None:
            return True
        return site is not None and site in self.sites

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> ApiKey:
        sites = tuple(row[3]) if row[3] is not None else None
        return cls(row[0], row[1], row[2], sites, row[4], row[5], row[6], row[7])


def hash_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def normalise_rate(rate: str | None) -> str | None:
    """`rate` in its canonical spelling (`60/min,burst=10`), or a `CmsragError` that shows the expected form."""
    if rate is None:
        return None
    try:
        parsed = Rate.parse(rate)
    except ValueError:
        raise CmsragError(f"rate {rate!r} is not valid: use a rate such as '60/min' or '60/min,burst=10'") from None
    return f"{parsed.per_minute}/min,burst={parsed.burst}"


def create_key(conn: psycopg.Connection[Any], name: str, sites: list[str] | None = None,
               rate: str | None = None) -> tuple[str, ApiKey]:
    """A new key: the raw key (shown once, never stored) and its record. `sites=None` reads every site."""
    if not name.strip():
        raise CmsragError("an API key needs a name (who or what uses it)")
    if sites is not None and not sites:
        raise CmsragError("name at least one site, or none for every site")
    scope = list(dict.fromkeys(sites)) if sites is not None else None
    canonical = normalise_rate(rate)
    for _ in range(5):  # 36^8 prefixes: a clash is rare, and the unique index turns it into a retry
        prefix = "".join(secrets.choice(PREFIX_CHARS) for _ in range(PREFIX_LEN))
        raw = f"cmsrag_{prefix}_" + "".join(secrets.choice(SECRET_CHARS) for _ in range(SECRET_LEN))
        try:
            with conn.transaction():
                row = conn.execute(
                    f"INSERT INTO api_keys (prefix, key_hash, name, sites, rate) VALUES (%s, %s, %s, %s, %s) "
                    f"RETURNING {_COLUMNS}", (prefix, hash_key(raw), name.strip(), scope, canonical)).fetchone()
        except psycopg.errors.UniqueViolation:
            continue
        assert row is not None
        return raw, ApiKey.from_row(row)
    raise CmsragError("could not pick an unused key prefix; try again")


def list_keys(conn: psycopg.Connection[Any]) -> list[ApiKey]:
    rows = conn.execute(f"SELECT {_COLUMNS} FROM api_keys ORDER BY id").fetchall()
    return [ApiKey.from_row(r) for r in rows]


def revoke_key(conn: psycopg.Connection[Any], prefix_or_id: str) -> ApiKey:
    """Revoke by prefix (also as `cmsrag_<prefix>…`, even the whole key) or numeric id. Revoking twice keeps the
    first time, so scripts may repeat it."""
    ref = prefix_or_id.strip().removeprefix("cmsrag_").split("_", 1)[0]
    key_id = int(ref) if ref.isdigit() and len(ref) < 19 else None
    row = conn.execute(
        f"UPDATE api_keys SET revoked_at = coalesce(revoked_at, clock_timestamp()) "
        f"WHERE id = (SELECT id FROM api_keys WHERE prefix = %s OR id = %s ORDER BY prefix = %s DESC LIMIT 1) "
        f"RETURNING {_COLUMNS}", (ref, key_id, ref)).fetchone()
    if row is None:
        raise CmsragError(f"no API key with prefix or id {prefix_or_id!r} (see `cmsrag keys list`)")
    return ApiKey.from_row(row)


def authenticate(conn: psycopg.Connection[Any], raw_key: str) -> ApiKey:
    """The live key `raw_key` names, or `AccessDenied(401)`. Messages never repeat the key: it may be a
    real key pasted into the wrong place, and error bodies end up in logs."""
    match = KEY_RE.fullmatch(raw_key.strip())
    if match is None:
        raise AccessDenied("malformed API key: expected cmsrag_<prefix>_<secret> as issued by `cmsrag keys create`")
    row = conn.execute(
        f"SELECT {_COLUMNS}, key_hash, "
        f"       last_used_at IS NULL OR last_used_at < clock_timestamp() - interval '1 minute' "
        f"FROM api_keys WHERE prefix = %s", (match[1],)).fetchone()
    if row is None or not hmac.compare_digest(row[8], hash_key(match[0])):
        raise AccessDenied("unknown API key")
    key = ApiKey.from_row(row)
    if key.revoked_at is not None:
        raise AccessDenied("this API key has been revoked")
    if row[9]:  # the WHERE repeats the test, so replicas racing here write once between them
        touched = conn.execute(
            "UPDATE api_keys SET last_used_at = clock_timestamp() WHERE id = %s AND (last_used_at IS NULL "
            "OR last_used_at < clock_timestamp() - interval '1 minute') RETURNING last_used_at", (key.id,)).fetchone()
        if touched is not None:
            key = ApiKey.from_row((*row[:6], touched[0], row[7]))
    return key
