"""Through the real queue: RabbitMQ (publisher confirms on), dramatiq actors, the pipeline, real Postgres."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.cli.admin import cmd_retry
from services.cli.app import App
from services.cli.indexing import in_process_worker, wait_until_done
from shared.models import DocRef
from shared.sites import SiteConfig
from tests.conftest import delete_queues
from tests.integration.test_pipeline import SECTIONS, page, write


@pytest.fixture
def app(make_settings, rabbitmq_url: str, db) -> Iterator[App]:
    settings = make_settings(rabbitmq_url=rabbitmq_url, max_document_bytes=20_000)
    application = App(settings)
    yield application
    application.close()
    delete_queues(rabbitmq_url, settings.queue_prefix)


def documents(app: App) -> list[tuple]:
    with app.db.connection() as conn:
        return conn.execute("SELECT source_id, status, chunk_count FROM documents ORDER BY source_id").fetchall()


def failures(app: App) -> list[tuple]:
    with app.db.connection() as conn:
        return conn.execute("SELECT source_id, stage, retryable, attempts, resolved_at IS NULL FROM failures "
                            "ORDER BY id").fetchall()


def test_a_document_requested_on_the_queue_is_indexed_by_a_worker(app: App, site_dir: Path):
    write(site_dir, "a.html", page("A", SECTIONS))
    with in_process_worker(app):
        app.queue.request(DocRef("docs", "a.html"))
        assert wait_until_done(app, "docs", timeout=30, progress=False)
    assert documents(app) == [("a.html", "indexed", 3)]


def test_a_duplicated_message_leaves_the_index_as_one_delivery_would(app: App, site_dir: Path, db):
    write(site_dir, "a.html", page("A", SECTIONS))
    with in_process_worker(app):
        app.queue.request(DocRef("docs", "a.html"))
        assert wait_until_done(app, "docs", timeout=30, progress=False)
        with db.connection() as conn:
            once = conn.execute("SELECT id, ordinal, content_hash FROM chunks ORDER BY ordinal").fetchall()
        embedded_once = app.embedder.texts_embedded  # type: ignore[attr-defined]
        for _ in range(3):
            app.queue.request(DocRef("docs", "a.html"))
        assert wait_until_done(app, "docs", timeout=30, progress=False)
    with db.connection() as conn:
        again = conn.execute("SELECT id, ordinal, content_hash FROM chunks ORDER BY ordinal").fetchall()
    assert again == once, "chunks are neither duplicated nor rewritten"
    assert app.embedder.texts_embedded == embedded_once  # type: ignore[attr-defined]
    assert documents(app) == [("a.html", "indexed", 3)]


def test_a_permanent_failure_is_not_retried_and_becomes_one_failure_row(app: App, site_dir: Path):
    write(site_dir, "big.html", page("Big", {"x": "lorem ipsum " * 5000}))
    with in_process_worker(app):
        app.queue.request(DocRef("docs", "big.html"))
        assert wait_until_done(app, "docs", timeout=30, progress=False)
    assert failures(app) == [("big.html", "fetch", False, 1, True)]


def test_a_transient_failure_is_retried_with_backoff_then_recorded(make_settings, rabbitmq_url, db, tmp_path):
    down = SiteConfig(name="down", kind="wordpress", url="http://127.0.0.1:9")  # nothing listens on port 9
    settings = make_settings(rabbitmq_url=rabbitmq_url, sites=(down,), max_retries=2)
    app = App(settings)
    try:
        with in_process_worker(app):
            app.queue.request(DocRef("down", "posts:1"))
            assert wait_until_done(app, "down", timeout=60, progress=False)
        assert failures(app) == [("posts:1", "fetch", True, 3, True)]
    finally:
        app.close()
        delete_queues(rabbitmq_url, settings.queue_prefix)


def test_retry_replays_a_failed_document_once_its_cause_is_fixed(app: App, site_dir: Path):
    write(site_dir, "big.html", page("Big", {"x": "lorem ipsum " * 5000}))
    with in_process_worker(app):
        app.queue.request(DocRef("docs", "big.html"))
        assert wait_until_done(app, "docs", timeout=30, progress=False)
        assert len(failures(app)) == 1
        write(site_dir, "big.html", page("Big", SECTIONS))
        assert cmd_retry(app, argparse.Namespace(ids=[], all=True, site=None)) == 0
        assert wait_until_done(app, "docs", timeout=30, progress=False)
    assert documents(app) == [("big.html", "indexed", 3)]
    assert failures(app)[0][-1] is False, "the failure row is resolved"


def test_backfill_batches_index_every_document_and_route_failures(app: App, site_dir: Path):
    for i in range(20):
        write(site_dir, f"p{i:02}.html", page(f"P{i}", {f"s{i}": f"Topic {i} in some depth. " * 5}))
    write(site_dir, "big.html", page("Big", {"x": "lorem ipsum " * 5000}))
    ids = [f"p{i:02}.html" for i in range(20)] + ["big.html"]
    with in_process_worker(app):
        queued = sum(app.queue.request_many("docs", ids, batch_size=8))
        assert wait_until_done(app, "docs", timeout=60, progress=False)
    assert queued == 21
    assert [d[1] for d in documents(app)].count("indexed") == 20
    assert failures(app) == [("big.html", "fetch", False, 1, True)]
