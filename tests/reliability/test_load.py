"""Scenario 16: questions and webhooks at a steady rate, then the backlog drains and the index matches the CMS.

The API (gunicorn, 2 workers) answers /v1/ask, /v1/ask/stream and /v1/search at a fixed rate while the receiver
(gunicorn) takes signed webhooks for posts a CMS keeps revising, and a `cmsrag worker` (fake embedder) re-indexes
them. The load is open-loop: requests go out on schedule whatever the answers' speed, and latency counts from
the scheduled time, so a slow server cannot hide by slowing the client down. Meanwhile a sampler reads Postgres
connections (pg_stat_activity) and the API processes' resident memory.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from bench.common import gunicorn
from tests.conftest import delete_queues
from tests.fakes.cms_replay import ReplayServer
from tests.reliability.conftest import SCALE, scaled
from tests.reliability.services import (
    count,
    environment,
    fresh_index,
    post_key,
    rss_mb,
    send_webhook,
    server_pids,
    wait_for,
    wordpress_site,
    worker,
    wp_post,
)

# The query-service goal (issue #4): /v1/search p99 ≤ 50 ms, so p95 ≤ 50 ms. Held at full scale; the short run
# shares two cores with everything else and only guards against a collapse.
GOAL_P95_MS = 50.0 if SCALE != "short" else 1000.0
MAX_ERROR_RATE = 0.001
POSTS = scaled(30, 200)
REVISED = datetime(2026, 2, 1)
NOUNS = ["kettle", "teapot", "grinder", "toaster", "blender", "oven", "fridge", "mixer", "juicer", "scale"]
VERBS = ["descale", "clean", "repair", "assemble", "store", "oil", "unclog", "calibrate"]


def revision(pid: int, rev: int) -> str:
    noun, verb = NOUNS[pid % len(NOUNS)], VERBS[pid % len(VERBS)]
    return (f"<h2>How to {verb} the {noun}</h2><p>To {verb} the {noun} number {pid}, unplug it first, then follow "
            f"step {rev}: rev{rev}x{pid} applies from this revision on.</p>")


@dataclass
class Load:
    """What the load saw: per kind, latencies (ms) of answered requests and the errors."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: {"question": [], "webhook": []})
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, kind: str, scheduled: float, ok: bool, detail: str) -> None:
        with self.lock:
            self.latencies[kind].append((time.monotonic() - scheduled) * 1000)
            if not ok:
                self.errors.append(f"{kind}: {detail}")

    def p(self, kind: str, q: float) -> float:
        values = sorted(self.latencies[kind])
        return round(values[min(len(values) - 1, int(q * len(values)))], 1) if values else 0.0


@contextlib.contextmanager
def sampler(pg_url: str, api: str, every: float = 1.0) -> Iterator[list[tuple[float, int, float]]]:
    """(time, Postgres connections to the database, API RSS in MB), once a second until the block ends."""
    samples: list[tuple[float, int, float]] = []
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(every):
            connections = count(pg_url, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                        "AND pid <> pg_backend_pid()")
            samples.append((time.monotonic(), connections, rss_mb(server_pids(api))))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        stop.set()
        thread.join()


@pytest.fixture
def stack(pg_url: str, rabbitmq_url: str, tmp_path: Path) -> Iterator[tuple[ReplayServer, str, str]]:
    """(the CMS, the receiver, the API) over `posts` already indexed, with a worker."""
    prefix = f"rel16{uuid.uuid4().hex[:8]}"
    with contextlib.ExitStack() as stack:
        cms = stack.enter_context(ReplayServer())
        for pid in range(1, POSTS + 1):
            cms.add(post_key(pid), wp_post(pid, f"{NOUNS[pid % len(NOUNS)].title()} guide {pid}", revision(pid, 0)))
        env = environment(pg_url, [wordpress_site(cms.url)], RABBITMQ_URL=rabbitmq_url, CMSRAG_QUEUE_PREFIX=prefix,
                          CMSRAG_MIN_BACKOFF_MS="100", CMSRAG_MAX_BACKOFF_MS="2000")
        fresh_index(env, "blog", [f"posts:{p}" for p in range(1, POSTS + 1)])
        stack.callback(delete_queues, rabbitmq_url, prefix)
        stack.enter_context(worker(env, tmp_path))
        receiver = stack.enter_context(gunicorn("services.ingest.wsgi:app", env, workers=1, threads=4))
        api = stack.enter_context(gunicorn("services.api.wsgi:app", env, workers=2, threads=8))
        yield cms, receiver, api


def test_steady_questions_and_webhooks_keep_latency_errors_connections_and_memory_in_bounds(
        stack: tuple[ReplayServer, str, str], pg_url: str, scenario: Any) -> None:
    """16 load"""
    cms, receiver, api = stack
    q_rate, w_rate, seconds = scaled(10, 50), scaled(2, 10), scaled(20.0, 300.0, 1800.0)
    rng = random.Random(16)
    load, latest = Load(), dict[int, int]()
    local = threading.local()

    def session() -> requests.Session:
        local.http = getattr(local, "http", None) or requests.Session()
        return local.http

    def question(scheduled: float, kind: float, verb: str, noun: str) -> None:
        try:
            if kind < 0.6:
                r = session().post(f"{api}/v1/ask", json={"question": f"How do I {verb} the {noun}?"}, timeout=30)
                ok = r.status_code == 200 and "answer" in r.json()
            elif kind < 0.9:
                r = session().post(f"{api}/v1/search", json={"query": f"{verb} {noun}"}, timeout=30)
                ok = r.status_code == 200 and "results" in r.json()
            else:
                r = session().get(f"{api}/v1/ask/stream", params={"q": f"{verb} the {noun}"}, timeout=30)
                ok = r.status_code == 200 and "event: done" in r.text
            load.record("question", scheduled, ok, f"{r.status_code} {r.text[:100]}")
        except requests.RequestException as exc:
            load.record("question", scheduled, False, repr(exc))

    def webhook(scheduled: float, pid: int) -> None:
        try:
            r = send_webhook(session(), receiver, "updated", f"posts:{pid}")
            load.record("webhook", scheduled, r.status_code == 202, f"{r.status_code} {r.text[:100]}")
        except requests.RequestException as exc:
            load.record("webhook", scheduled, False, repr(exc))

    t0 = time.monotonic() + 0.5
    plan = [(t0 + i / q_rate, "q") for i in range(int(seconds * q_rate))]
    plan += [(t0 + i / w_rate, "w") for i in range(int(seconds * w_rate))]
    with sampler(pg_url, api) as samples, ThreadPoolExecutor(scaled(16, 64)) as pool:
        for at, kind in sorted(plan):
            time.sleep(max(0.0, at - time.monotonic()))
            if kind == "q":
                pool.submit(question, at, rng.random(), rng.choice(VERBS), rng.choice(NOUNS))
                continue
            pid = rng.randint(1, POSTS)  # the editor saves a new revision, then the CMS sends the webhook
            latest[pid] = rev = latest.get(pid, 0) + 1
            modified = (REVISED + timedelta(seconds=rev)).strftime("%Y-%m-%dT%H:%M:%S")  # later revision, later time
            cms.add(post_key(pid), wp_post(pid, f"{NOUNS[pid % len(NOUNS)].title()} guide {pid}",
                                           revision(pid, rev), modified=modified))
            pool.submit(webhook, at, pid)
        pool.shutdown(wait=True)
        loaded = time.monotonic()
        drain_s = wait_for(lambda: count(pg_url, "SELECT count(*) FROM pending") == 0, 120, "the backlog to drain")
    stale = [pid for pid, rev in latest.items() if count(
        pg_url, "SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.document_id "
                "WHERE d.source_id = %s AND c.text LIKE %s", (f"posts:{pid}", f"%rev{rev}x{pid}%")) == 0]
    during = [s for s in samples if s[0] <= loaded]
    warm = [s for s in during if s[0] > t0 + seconds / 4]  # after the pools and caches have filled
    half = len(warm) // 2
    first, second = warm[:half], warm[half:]
    total, p95 = sum(len(v) for v in load.latencies.values()), load.p("question", 0.95)
    figures = {
        "questions": len(load.latencies["question"]), "webhooks": len(load.latencies["webhook"]),
        "q_p50_ms": load.p("question", 0.5), "q_p95_ms": p95,
        "q_p99_ms": load.p("question", 0.99), "webhook_p95_ms": load.p("webhook", 0.95),
        "errors": len(load.errors), "pg_connections": f"{max(s[1] for s in first)}→{max(s[1] for s in second)}",
        "api_rss_mb": f"{first[0][2]}→{second[-1][2]}", "drain_s": round(drain_s, 1), "stale_documents": len(stale),
    }
    scenario(**figures)
    assert len(load.errors) <= MAX_ERROR_RATE * total, load.errors[:5]
    assert p95 <= GOAL_P95_MS, f"question p95 {p95} ms (bound {GOAL_P95_MS} ms)"
    assert max(s[1] for s in second) <= max(s[1] for s in first) + 2, "Postgres connections keep growing"
    assert second[-1][2] <= first[0][2] * 1.15 + 10, "the API processes' memory keeps growing"
    assert not stale, f"documents whose last revision is not indexed: {stale}"
