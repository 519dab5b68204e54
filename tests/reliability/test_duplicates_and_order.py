"""Repeated and reordered webhooks: the index holds one run's result of the CMS's current version.

Through the real receiver (gunicorn, 2 processes of 4 threads) and a real worker; the embedding API answers slowly
enough that concurrent runs of one document would overlap, and counts every text it embeds.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from tests.reliability import convergence
from tests.reliability.conftest import scaled
from tests.reliability.fakecms import FakeWordPress, WebhookSender
from tests.reliability.fixtures import *  # noqa: F403
from tests.reliability.harness import receiver, wait_for

SITE = "blog"


def deliver_together(sender: WebhookSender, event: str, post_id: int, webhook_ids: list[str]) -> list[int]:
    """The deliveries at the same instant, one thread each; the final answer of each."""
    start = threading.Barrier(len(webhook_ids))
    answers: list[int] = []

    def one(webhook_id: str) -> None:
        start.wait()
        answers.append(sender.send(event, post_id, webhook_id).answers[-1])

    threads = [threading.Thread(target=one, args=(w,)) for w in webhook_ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return sorted(answers)


def report_for(stack: Stack) -> convergence.Report:  # noqa: F405
    wait_for(lambda: stack.pending() == 0, 60, "the backlog to drain")
    with stack.db.connection() as conn:
        return convergence.compare(conn, stack.settings, stack.app.embedder, SITE)


def test_the_same_webhook_delivered_five_times_at_once_is_indexed_once(
        make_stack, wordpress, embeddings, rabbitmq_url, scenario):
    """4 the same webhook delivered 5x concurrently"""
    posts = scaled(3, 10)
    embeddings.latency = 0.2
    stack = make_stack(rabbitmq_url)
    ids = [wordpress.create() for _ in range(posts)]
    with receiver(stack.env) as url:
        stack.workers.start(threads=4)
        sender = WebhookSender(url)
        answers = [deliver_together(sender, "published", post_id, [f"wp_same_{post_id}"] * 5) for post_id in ids]
        report = report_for(stack)
    per_text = embeddings.texts()
    with stack.db.connection() as conn:
        runs = conn.execute("SELECT count(*) FROM chunks").fetchone()
    scenario(posts=posts, deliveries=5 * posts, queued=sum(a.count(202) for a in answers),
             max_embeddings_per_text=max(per_text.values()), chunks=runs[0] if runs else None, **report.counts())
    assert all(a == [200, 200, 200, 200, 202] for a in answers), answers
    assert max(per_text.values()) == 1, "at most one embedding per content hash"
    assert sum(per_text.values()) == sum(len(h) for _, h in convergence.expected(
        stack.settings, stack.app.embedder, SITE).values())
    assert report.converged and report.current == posts, report


def test_a_burst_of_hooks_for_one_save_costs_one_embedding_per_chunk(
        make_stack, wordpress, embeddings, rabbitmq_url, scenario):
    """4b one save's 5 hooks (distinct webhook ids) at once"""
    posts = scaled(3, 10)
    embeddings.latency = 0.2
    stack = make_stack(rabbitmq_url)
    ids = [wordpress.create() for _ in range(posts)]
    with receiver(stack.env) as url:
        stack.workers.start(threads=4)
        sender = WebhookSender(url)
        answers = [deliver_together(sender, "updated", p, [f"wp_{p}_{i}" for i in range(5)]) for p in ids]
        report = report_for(stack)
    per_text = embeddings.texts()
    fetches = sum(wordpress.server.hits(f"/wp-json/wp/v2/posts/{p}") for p in ids) - posts  # minus compare()'s
    scenario(posts=posts, deliveries=5 * posts, fetches=fetches, max_embeddings_per_text=max(per_text.values()),
             **report.counts())
    assert all(a == [202] * 5 for a in answers), answers
    assert report.converged and report.current == posts, report
    assert max(per_text.values()) == 1, f"texts embedded up to {max(per_text.values())} times"


def test_a_newer_version_indexed_first_is_never_replaced_by_an_older_one(
        make_stack, wordpress: FakeWordPress, rabbitmq_url, scenario):
    """5 version 2's webhook before version 1's"""
    stack = make_stack(rabbitmq_url)
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    late, slow = wordpress.create(at=an_hour_ago), wordpress.create(at=an_hour_ago)
    with receiver(stack.env) as url:
        worker = stack.workers.start(threads=2)
        sender = WebhookSender(url)

        # A late webhook: version 2's arrives and is indexed, then version 1's, whose fetch meets a lagging
        # CMS cache that still answers version 1.
        wordpress.edit(late)
        assert sender.send("updated", late).accepted
        wait_for(lambda: stack.pending() == 0, 30, "version 2 to be indexed")
        wordpress.answer_once(late, version=1)
        assert sender.send("published", late).accepted

        # A slow fetch: version 1's fetch is under way (and slow) when version 2 is saved and announced. Runs for
        # one document take turns (a per-document lock), so version 2's run waits for version 1's, then indexes.
        wordpress.answer_once(slow, version=1, delay=1.5)
        assert sender.send("published", slow).accepted
        wait_for(lambda: wordpress.server.hits(f"/wp-json/wp/v2/posts/{slow}") == 1, 30, "version 1's fetch")
        wordpress.edit(slow)
        assert sender.send("updated", slow).accepted
        wait_for(lambda: worker.events("document_stale") and stack.pending() == 0, 30,
                 "the late version turned away and the slow one's newer version indexed")
        report = report_for(stack)
    refused = sorted(e["source_id"] for e in worker.events("document_stale"))
    fetches = wordpress.server.hits(f"/wp-json/wp/v2/posts/{slow}")
    scenario(orderings=2, older_versions_refused=len(refused), slow_fetches=fetches, **report.counts())
    assert f"posts:{late}" in refused
    assert fetches >= 2, "version 2's run must fetch again after version 1's run, not be coalesced into it"
    assert report.converged and report.current == 2, report
