"""GCRA rate limits in a real Postgres: bursts, refill, and one limit shared by several API replicas."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

from services.api.access import Access, Caller
from services.api.keys import create_key
from services.api.ratelimit import RateLimiter, prune
from shared.db import Database
from shared.errors import RateLimited
from shared.query_settings import QuerySettings, Rate


def passes(limiter: RateLimiter, bucket: str, rate: Rate, attempts: int) -> int:
    """How many of `attempts` checks pass; every refusal must name a wait within one interval."""
    n = 0
    for _ in range(attempts):
        try:
            limiter.check(bucket, rate)
            n += 1
        except RateLimited as exc:
            assert 0 < exc.retry_after <= 60 / rate.per_minute
    return n


def test_a_burst_passes_at_once_then_the_next_request_is_limited_with_a_sane_retry_after(db: Database):
    limiter, rate = RateLimiter(db), Rate(per_minute=60, burst=5)
    remaining = [limiter.check("ip:10.0.0.1", rate).remaining for _ in range(5)]
    assert remaining == [4, 3, 2, 1, 0]
    with pytest.raises(RateLimited) as info:
        limiter.check("ip:10.0.0.1", rate)
    assert 0.5 < info.value.retry_after <= 1.0, "the next request fits one interval (1 s) after the burst"
    assert info.value.bucket == "ip:10.0.0.1"


def test_the_allowance_gives_ratelimit_headers(db: Database):
    allowance = RateLimiter(db).check("key:1", Rate(per_minute=30, burst=3))
    assert allowance.headers() == {"RateLimit-Limit": "3", "RateLimit-Remaining": "2", "RateLimit-Reset": "2"}
    assert 1.9 < allowance.reset <= 2.0


def test_refused_requests_do_not_lengthen_the_wait(db: Database):
    limiter, rate = RateLimiter(db), Rate(per_minute=60, burst=2)
    assert passes(limiter, "b", rate, 2) == 2
    with db.connection() as conn:
        [(before,)] = conn.execute("SELECT tat FROM rate_limits WHERE bucket = 'b'").fetchall()
    assert passes(limiter, "b", rate, 20) == 0
    with db.connection() as conn:
        [(after,)] = conn.execute("SELECT tat FROM rate_limits WHERE bucket = 'b'").fetchall()
    assert after == before


def test_tokens_come_back_one_per_interval(db: Database):
    limiter, rate = RateLimiter(db), Rate(per_minute=60, burst=5)
    assert passes(limiter, "b", rate, 10) == 5
    with db.connection() as conn:  # let 2.5 s pass, as far as the bucket is concerned
        conn.execute("UPDATE rate_limits SET tat = tat - interval '2.5 seconds' WHERE bucket = 'b'")
    assert passes(limiter, "b", rate, 10) == 2
    with db.connection() as conn:  # a long pause refills to the burst, never beyond
        conn.execute("UPDATE rate_limits SET tat = tat - interval '1 hour' WHERE bucket = 'b'")
    assert passes(limiter, "b", rate, 10) == 5


def test_waiting_retry_after_on_the_real_clock_lets_the_next_request_through(db: Database):
    limiter, rate = RateLimiter(db), Rate(per_minute=300, burst=1)  # one request per 0.2 s
    limiter.check("b", rate)
    with pytest.raises(RateLimited) as info:
        limiter.check("b", rate)
    assert 0 < info.value.retry_after <= 0.2
    time.sleep(info.value.retry_after + 0.02)
    assert limiter.check("b", rate).remaining == 0


def test_two_replicas_with_two_threads_each_share_one_limit_exactly(db: Database, pg_url: str):
    rate = Rate(per_minute=1, burst=7)  # no refill during the test: exactly the burst may pass
    replicas = [Database(pg_url, max_size=4).open() for _ in range(2)]
    start = threading.Barrier(4)
    counts: list[int] = []

    def hammer(limiter: RateLimiter) -> None:
        start.wait()
        counts.append(passes(limiter, "key:42", rate, 25))

    try:
        threads = [threading.Thread(target=hammer, args=(RateLimiter(r),)) for r in replicas for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    finally:
        for r in replicas:
            r.close()
    assert len(counts) == 4 and sum(counts) == 7
    assert RateLimiter(db).check("key:43", rate).remaining == 6, "other buckets are unaffected"


def test_prune_removes_only_buckets_that_are_full_again(db: Database):
    limiter = RateLimiter(db)
    limiter.check("old", Rate(60, 5))
    limiter.check("busy", Rate(1, 5))
    with db.connection() as conn:
        conn.execute("UPDATE rate_limits SET tat = tat - interval '10 minutes' WHERE bucket = 'old'")
        assert prune(conn, timedelta(minutes=20)) == 0
        assert prune(conn) == 1
        assert [b for (b,) in conn.execute("SELECT bucket FROM rate_limits").fetchall()] == ["busy"]


def test_keyed_callers_are_limited_per_key_at_its_own_rate_and_public_ones_per_address(db: Database):
    access = Access(QuerySettings(public_rate=Rate(60, 2), key_rate=Rate(60, 4)), db)
    with db.connection() as conn:
        own, _ = create_key(conn, "own rate", None, "60/min,burst=1")
        default, _ = create_key(conn, "default rate", None, None)

    def allowed(headers: dict[str, str], address: str) -> int:
        caller = access.caller(headers, address)
        return sum(1 for _ in range(6) if _passes(access, caller))

    assert allowed({"X-API-Key": own}, "10.0.0.1") == 1
    assert allowed({"X-API-Key": default}, "10.0.0.1") == 4
    assert allowed({}, "10.0.0.1") == 2
    assert allowed({}, "10.0.0.2") == 2, "another address has its own bucket"
    assert allowed({}, "2001:db8::1") == 2
    assert allowed({}, "2001:db8::2") == 0, "IPv6 clients share a bucket per /64"


def _passes(access: Access, caller: Caller) -> bool:
    try:
        access.limit(caller)
    except RateLimited:
        return False
    return True
