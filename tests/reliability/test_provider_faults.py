"""Scenarios 7 and 8: the embedding provider refuses one document, or is down altogether for a while.

`cmsrag worker` embeds through the real `openai` SDK against `tests.fakes.openai_server` over HTTP, in a database
of its own (the index belongs to the model); documents come from a CMS answering in WordPress's REST shapes. The
provider's request log is the witness: how often the poison was sent, how many calls an outage drew.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services.cli.app import App
from shared.embedders.openai import OpenAIEmbedder
from shared.models import DocRef
from shared.settings import Settings
from tests.conftest import delete_queues
from tests.fakes.cms_replay import ReplayServer
from tests.fakes.http_server import Reply, strings_in
from tests.fakes.openai_server import FakeOpenAIServer
from tests.reliability.conftest import scaled
from tests.reliability.services import (
    cli,
    count,
    environment,
    post_key,
    query,
    scratch_database,
    wait_for,
    wordpress_site,
    worker,
    wp_post,
)

MODEL, DIMENSIONS = "text-embedding-3-small", 384
MODEL_ID = f"openai:{MODEL}@{DIMENSIONS}"
# Each attempt the queue makes is up to this many HTTP requests: the SDK retries 5xx itself (cmsrag keeps its default).
SDK_TRIES = 1 + int(inspect.signature(OpenAIEmbedder).parameters["max_retries"].default)


class OutageServer(FakeOpenAIServer):
    """The fake provider, answering 503 to every embedding request while `down` is set; logs when each request came
    and what it asked to embed. The 503 carries `retry-after-ms: 1`, so the SDK's own retries take milliseconds and
    the spacing between attempts is the queue's backoff alone."""

    def __init__(self) -> None:
        super().__init__(default_dimensions=DIMENSIONS)
        self.down = threading.Event()
        self.embedding_calls: list[tuple[float, str]] = []

    def route(self, path: str, body: dict[str, Any]) -> Reply:
        if path == "/v1/embeddings":
            self.embedding_calls.append((time.monotonic(), " ".join(strings_in(body.get("input")))))
            if self.down.is_set():
                return Reply(503, self.error_body(503, "The server is overloaded or not ready yet."),
                             headers={"retry-after-ms": "1"})
        return super().route(path, body)


@dataclasses.dataclass
class Stack:
    provider: OutageServer
    app: App  # the producer side only: it queues documents as the receiver does
    env: dict[str, str]
    url: str

    def queue(self, post_ids: list[int]) -> None:
        for pid in post_ids:
            self.app.queue.request(DocRef("blog", f"posts:{pid}"))

    def indexed(self) -> int:
        return count(self.url, "SELECT count(*) FROM documents WHERE status = 'indexed'")

    def pending(self) -> int:
        return count(self.url, "SELECT count(*) FROM pending")


@contextlib.contextmanager
def provider_stack(pg_server_url: str, rabbitmq_url: str, tmp_path: Path, posts: dict[int, str],
                   **retry: str) -> Iterator[Stack]:
    """A worker embedding through the fake provider, over a CMS holding `posts` (id → text)."""
    prefix = f"rel78{uuid.uuid4().hex[:8]}"
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(scratch_database(pg_server_url, MODEL_ID, DIMENSIONS))
        provider = stack.enter_context(OutageServer())
        cms = stack.enter_context(ReplayServer())
        for pid, text in posts.items():
            cms.add(post_key(pid), wp_post(pid, f"Kettle note {pid}", f"<h2>Note</h2><p>{text}</p>"))
        env = environment(url, [wordpress_site(cms.url)], RABBITMQ_URL=rabbitmq_url, CMSRAG_QUEUE_PREFIX=prefix,
                          CMSRAG_EMBEDDER="openai", CMSRAG_EMBED_MODEL=MODEL,
                          CMSRAG_EMBED_DIMENSIONS=str(DIMENSIONS), CMSRAG_EMBED_BASE_URL=provider.base_url,
                          CMSRAG_EMBED_API_KEY="sk-test", **retry)
        stack.callback(delete_queues, rabbitmq_url, prefix)
        app = App(Settings.from_env(env))
        stack.callback(app.close)
        stack.enter_context(worker(env, tmp_path))
        yield Stack(provider, app, env, url)


def notes(n: int, marker: str = "") -> dict[int, str]:
    return {pid: f"Kettle note {pid}: descale monthly with citric acid {marker if pid == 1 else ''}"
            for pid in range(1, n + 1)}


def test_a_poison_document_fails_once_with_its_reason_and_is_replayed_by_cmsrag_retry(
        pg_server_url: str, rabbitmq_url: str, tmp_path: Path, scenario: Any) -> None:
    """7 poison document"""
    poison, max_retries = f"POISON{uuid.uuid4().hex[:8]}", 3
    posts = notes(scaled(6, 30), poison)
    with provider_stack(pg_server_url, rabbitmq_url, tmp_path, posts, CMSRAG_MAX_RETRIES=str(max_retries),
                        CMSRAG_MIN_BACKOFF_MS="100", CMSRAG_MAX_BACKOFF_MS="500") as s:
        s.provider.poison.append(poison)
        s.queue(list(posts))
        wait_for(lambda: s.pending() == 0, 60, "the worker to finish every document")
        sent = sum(1 for body in s.provider.bodies if any(poison in t for t in strings_in(body.get("input"))))
        rows = query(s.url, "SELECT id, source_id, stage, retryable, reason FROM failures WHERE resolved_at IS NULL")
        assert 1 <= sent <= max_retries + 1, f"the poison was sent {sent} times"
        assert [(r[1], r[2], r[3]) for r in rows] == [("posts:1", "embed", False)]
        assert "400" in rows[0][4] and "poisoned input" in rows[0][4], rows[0][4]
        assert s.indexed() == len(posts) - 1, "the other documents are unaffected"

        s.provider.poison.clear()  # the provider accepts it now (a fixed model, a raised limit)
        listed = cli(s.env, "failures", "--json")
        assert listed.returncode == 0, listed.stderr
        assert [f["id"] for f in json.loads(listed.stdout)] == [rows[0][0]]
        replay = cli(s.env, "retry", str(rows[0][0]))
        assert replay.returncode == 0 and "re-queued 1 document" in replay.stdout, replay.stdout + replay.stderr
        wait_for(lambda: s.indexed() == len(posts), 30, "the replayed document to be indexed")
        open_rows = count(s.url, "SELECT count(*) FROM failures WHERE resolved_at IS NULL")
        indexed_after = s.indexed()
        chunks = count(s.url, "SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.document_id "
                              "WHERE d.source_id = 'posts:1' AND c.text LIKE %s", (f"%{poison}%",))
    scenario(documents=len(posts), poison_sends=sent, max_retries=max_retries, failure_rows=len(rows),
             open_after_retry=open_rows, indexed_after_retry=indexed_after)
    assert open_rows == 0 and chunks >= 1


def min_wait_s(retry: int, *, min_backoff_ms: int, max_backoff_ms: int) -> float:
    """The shortest wait dramatiq allows before retry `retry` + 1 (0-based): min(min_backoff·2^k, max_backoff/2).
    Its jitter only lengthens a wait, except that a wait beyond max_backoff is redrawn in [max/2, max]."""
    return min(min_backoff_ms * 2 ** retry, max_backoff_ms / 2) / 1000


def max_calls(documents: int, seconds: float, *, min_backoff_ms: int, max_backoff_ms: int, max_retries: int) -> int:
    """The most embedding requests `documents` can draw in `seconds` of outage if backoff is honoured: the
    attempts that fit between the shortest waits, each at most `SDK_TRIES` requests."""
    attempts, elapsed = 1, 0.0
    while attempts <= max_retries:
        elapsed += min_wait_s(attempts - 1, min_backoff_ms=min_backoff_ms, max_backoff_ms=max_backoff_ms)
        if elapsed > seconds:
            break
        attempts += 1
    return documents * attempts * SDK_TRIES


def attempts_of(calls: list[tuple[float, str]], pid: int) -> list[list[float]]:
    """One document's requests grouped into the queue's attempts (an attempt's SDK retries come milliseconds apart)."""
    times = [t for t, text in calls if f"Kettle note {pid}:" in text]
    groups: list[list[float]] = []
    for t in times:
        if groups and t - groups[-1][-1] < 0.25:
            groups[-1].append(t)
        else:
            groups.append([t])
    return groups


def test_an_embedding_provider_outage_loses_nothing_honours_backoff_and_recovers_soon(
        pg_server_url: str, rabbitmq_url: str, tmp_path: Path, scenario: Any) -> None:
    """8 provider down"""
    outage_s = scaled(10.0, 180.0, 600.0)
    waits = {"min_backoff_ms": scaled(500, 1000), "max_backoff_ms": scaled(3000, 30_000)}
    # A retry budget outlasting the outage by half again, even at the shortest waits: nothing may be given up.
    budget = next(k for k in range(1, 10_000) if sum(min_wait_s(j, **waits) for j in range(k)) > 1.5 * outage_s)
    retry = {**waits, "max_retries": budget}
    posts = notes(scaled(10, 40))
    with provider_stack(pg_server_url, rabbitmq_url, tmp_path, posts,
                        **{f"CMSRAG_{k.upper()}": str(v) for k, v in retry.items()}) as s:
        s.provider.down.set()
        t0 = time.monotonic()
        s.queue(list(posts))
        time.sleep(max(0.0, outage_s - (time.monotonic() - t0)))
        assert s.indexed() == 0 and count(s.url, "SELECT count(*) FROM failures") == 0
        assert s.pending() == len(posts), "every document is still asked for"
        s.provider.down.clear()
        recovered = time.monotonic()
        during = [c for c in s.provider.embedding_calls if c[0] < recovered]
        recovery_s = wait_for(lambda: s.indexed() == len(posts) and s.pending() == 0, 120,
                              "every document to be indexed after the outage")
        failures = count(s.url, "SELECT count(*) FROM failures")
        lost = len(posts) - s.indexed()
    # Backoff, document by document: each wait between two attempts at least the shortest the settings allow.
    ratios = [(a[k + 1][0] - a[k][-1]) / min_wait_s(k, **waits)
              for a in (attempts_of(during, pid) for pid in posts) for k in range(len(a) - 1)]
    bound = max_calls(len(posts), outage_s, **retry)
    per_minute = sum(1 for t, _ in during if t > recovered - 60) * 60 / min(60.0, outage_s)
    # Once every document waits the longest backoff (a minute or two in), each draws at most SDK_TRIES calls per
    # max_backoff/2: the steady rate an outage may cost, however long it lasts.
    per_minute_cap = len(posts) * SDK_TRIES * 60 / (retry["max_backoff_ms"] / 2000)
    recovery_goal = retry["max_backoff_ms"] / 1000 + 5.0  # the longest wait a document can be in, plus slack
    scenario(documents=len(posts), outage_s=outage_s, calls_in_outage=len(during), call_bound=bound,
             calls_per_min=round(per_minute), calls_per_min_cap=round(per_minute_cap),
             tightest_wait_vs_backoff=round(min(ratios), 2), recovery_s=round(recovery_s, 1), lost=lost,
             failures=failures)
    assert failures == 0 and lost == 0
    assert len(ratios) >= len(posts), "every document was retried during the outage"
    assert min(ratios) >= 0.95, f"a retry came after {min(ratios):.2f}× the backoff the settings ask for"
    assert len(during) <= bound, f"{len(during)} embedding calls in a {outage_s:g}s outage; backoff allows {bound}"
    if outage_s >= 120:
        assert per_minute <= per_minute_cap, f"{per_minute:.0f} calls in the last minute (cap {per_minute_cap:.0f})"
    assert recovery_s <= recovery_goal, f"indexed {recovery_s:.1f}s after recovery (bound {recovery_goal:.1f}s)"


@pytest.mark.parametrize(("seconds", "expected_attempts"), [(0.0, 1), (0.5, 2), (1.4, 2), (1.5, 3), (2.5, 4), (3.4, 4)])
def test_the_call_bound_counts_the_attempts_backoff_allows(seconds: float, expected_attempts: int) -> None:
    # min_backoff 500 ms, max_backoff 2000 ms: waits of at least 0.5, 1.0, 1.0, 1.0 … seconds
    assert max_calls(1, seconds, min_backoff_ms=500, max_backoff_ms=2000, max_retries=10) == \
        expected_attempts * SDK_TRIES
