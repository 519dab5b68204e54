"""Rate limits shared by every API replica: GCRA with its state in Postgres.

GCRA (the generic cell rate algorithm) keeps one timestamp per bucket, the theoretical arrival time `tat`: when the
bucket would be empty again if nothing else arrived. With emission interval `T = 60 / per_minute` seconds, a
request arriving at `now` would move it to `new_tat = max(tat, now) + T`; it passes if the debt that leaves,
`new_tat - now`, is at most `burst * T` (equivalently, the burst tolerance `new_tat - (now + T)` is at most
`(burst - 1) * T`). So a fresh bucket lets exactly `burst` requests through at once and then one per `T`; a
refused request changes nothing, so hammering does not lengthen the wait. A missing row is a full bucket.

Each check is ONE statement: an `INSERT … ON CONFLICT DO UPDATE … WHERE … RETURNING` that reads `clock_timestamp()`
once, so the decision is atomic under concurrency (the row lock orders racing replicas) and uses the database's
clock, so replicas with skewed clocks still agree. The table is UNLOGGED: a crash only forgives some requests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from shared.db import Database
from shared.errors import RateLimited
from shared.query_settings import Rate

# `clock` is materialised once (clock_timestamp() is volatile, so Postgres never inlines the CTE): one `now` for
# the whole decision. `excluded.tat` is `now + T`, which lets the DO UPDATE clause see `now` too. When the WHERE
# refuses, `hit` is empty and the last column reads the bucket from the statement's snapshot, for Retry-After.
CHECK_SQL = """
WITH clock AS (SELECT clock_timestamp() AS now),
hit AS (
    INSERT INTO rate_limits AS r (bucket, tat)
    SELECT %(bucket)s, clock.now + %(interval)s FROM clock
    ON CONFLICT (bucket) DO UPDATE
        SET tat = greatest(r.tat + %(interval)s, excluded.tat)
        WHERE greatest(r.tat + %(interval)s, excluded.tat) - excluded.tat <= %(tolerance)s
    RETURNING r.tat
)
SELECT clock.now, hit.tat, (SELECT tat FROM rate_limits WHERE bucket = %(bucket)s)
FROM clock LEFT JOIN hit ON true
"""


@dataclass(frozen=True)
class Allowance:
    """What a passing request leaves: `remaining` requests that would pass right now, `reset` seconds until the
    bucket is full again. `limit` is the burst, the most a client can ever send at once."""

    bucket: str
    limit: int
    remaining: int
    reset: float

    def headers(self) -> dict[str, str]:
        """The `RateLimit-*` response headers (IETF draft httpapi-ratelimit-headers), whole seconds rounded up."""
        return {"RateLimit-Limit": str(self.limit), "RateLimit-Remaining": str(self.remaining),
                "RateLimit-Reset": str(math.ceil(self.reset))}


class RateLimiter:
    """Checks buckets such as `key:<id>` or `ip:<addr>` against a `Rate`; every replica sharing `db` shares limits."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def check(self, bucket: str, rate: Rate) -> Allowance:
        """Count one request against `bucket`, or raise `RateLimited` with the seconds until one would pass."""
        # Tolerance as a whole multiple of the interval as the database stores it (microseconds): rounding each
        # separately could make the burst one short.
        step = max(timedelta(microseconds=1), timedelta(seconds=60 / rate.per_minute))
        interval = step.total_seconds()
        params = {"bucket": bucket, "interval": step, "tolerance": step * (rate.burst - 1)}
        with self.db.connection() as conn:
            row = conn.execute(CHECK_SQL, params).fetchone()
        assert row is not None
        now, new_tat, seen_tat = row
        if new_tat is not None:
            debt = (new_tat - now).total_seconds()
            remaining = max(0, math.floor((rate.burst * interval - debt) / interval + 1e-3))
            return Allowance(bucket, rate.burst, remaining, debt)
        raise RateLimited(bucket, retry_after(now, seen_tat, interval, rate.burst))


def retry_after(now: datetime, tat: datetime | None, interval: float, burst: int) -> float:
    """Seconds until a refused request would pass: until `tat - (burst - 1) * T`. A refusal means the debt is
    above `(burst - 1) * T` and it never exceeds `burst * T`, so the answer lies in (0, T]. If a racing replica
    changed the row after this statement's snapshot, the `tat` read may be stale: answer T, the upper bound."""
    if tat is None:
        return interval
    wait = (tat - now).total_seconds() - (burst - 1) * interval
    return wait if 0 < wait <= interval else interval


def prune(conn: psycopg.Connection[Any], older_than: timedelta = timedelta(0)) -> int:
    """Delete buckets whose `tat` passed more than `older_than` ago: they are full, exactly like a missing row,
    so pruning never changes a decision. Returns how many went."""
    cur = conn.execute("DELETE FROM rate_limits WHERE tat < clock_timestamp() - %s", (older_than,))
    return cur.rowcount
