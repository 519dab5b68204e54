"""End to end with a real Wagtail: editors' actions → our app's signed webhooks → our receiver → RabbitMQ →
a worker (local embedding model) → pgvector → what `cmsrag search` returns.

One Wagtail site, one receiver and one worker serve the whole module; each test uses its own unique words
so tests do not see each other's pages.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from services.api.search import search
from services.cli.app import App
from services.cli.indexing import in_process_worker, reconcile_site
from shared.settings import Settings
from shared.sites import SiteConfig
from tests.cms.wagtail import DEFAULT_PYTHON, PROJECT_ROOT, WagtailServer, find_python, free_port
from tests.conftest import TABLES, delete_queues, unavailable
from tests.integration.live_receiver import LiveReceiver

APP_ROOT = PROJECT_ROOT / "services" / "ingest" / "wagtail_cmsrag"
SECRET = "e2e-wagtail-secret-0123456789"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack(pg_url: str, rabbitmq_url: str, tmp_path_factory) -> Iterator[tuple[App, LiveReceiver, WagtailServer]]:
    python = find_python()
    if python is None or not Path(python).exists():
        unavailable("Wagtail", f"no Wagtail python at {python or DEFAULT_PYTHON} (make services sets it up)")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
        conn.execute("TRUNCATE index_config; DROP INDEX IF EXISTS chunks_embedding_hnsw")
        conn.execute("ALTER TABLE chunks DROP COLUMN IF EXISTS embedding")
    port = free_port()
    wagtail = WagtailServer(tmp_path_factory.mktemp("e2e-wagtail"), extra_apps=("wagtail_cmsrag",),
                            pythonpath=(APP_ROOT,),
                            settings={"CMSRAG_RECEIVER_URL": f"http://127.0.0.1:{port}", "CMSRAG_SITE": "www",
                                      "CMSRAG_WEBHOOK_SECRETS": [SECRET], "CMSRAG_TIMEOUT": 2.0})
    wagtail.start(fresh=True)
    site = SiteConfig(name="www", kind="wagtail", url=wagtail.base_url, webhook_secrets=(SECRET,))
    settings = dataclasses.replace(Settings(sites=(site,)), database_url=pg_url, rabbitmq_url=rabbitmq_url,
                                   queue_prefix=f"e2e{uuid.uuid4().hex[:8]}", min_backoff_ms=100,
                                   max_backoff_ms=1000, data_dir=tmp_path_factory.mktemp("data"))
    app = App(settings, connect_broker_now=False)
    app.migrate()  # the local model: a 384-d index of its own
    receiver = LiveReceiver(app, port)
    receiver.start()
    try:
        with in_process_worker(app):
            yield app, receiver, wagtail
    finally:
        receiver.stop()
        wagtail.stop()
        app.close()
        delete_queues(rabbitmq_url, settings.queue_prefix)
        with psycopg.connect(pg_url, autocommit=True) as conn:  # leave the session database as other tests expect
            conn.execute(f"TRUNCATE {TABLES}, index_config RESTART IDENTITY CASCADE")
            conn.execute("DROP INDEX IF EXISTS chunks_embedding_hnsw")
            conn.execute("ALTER TABLE chunks DROP COLUMN IF EXISTS embedding")
        from shared.migrate import ensure_embedding_column

        with psycopg.connect(pg_url, autocommit=True) as conn:
            ensure_embedding_column(conn, "fake:fake-384", 384)


def found(app: App, word: str) -> list[str]:
    """URLs of the passages `cmsrag search` returns that contain `word`."""
    [vec] = app.embedder.embed([word])
    with app.db.connection() as conn:
        hits = search(conn, vec, word, k=20, mode="hybrid")
    return [h.link for h in hits if word in h.text]


def eventually(check, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


def article(word: str, extra: str = "") -> list[dict]:
    return [{"type": "heading", "value": {"text": f"About {word}", "anchor": "about", "level": 2}},
            {"type": "paragraph", "value": f"<p>The {word} is documented here. {extra}</p>"}]


def words(n: int = 1) -> list[str]:
    return [f"zq{uuid.uuid4().hex[:8]}" for _ in range(n)]


def test_a_published_page_becomes_searchable_with_a_deep_link(stack):
    app, _, wagtail = stack
    [w] = words()
    page_id = wagtail.create_article(f"Page {w}", article(w))
    assert eventually(lambda: found(app, w)), "the published page never became searchable"
    assert found(app, w)[0].endswith("#about")
    assert page_id


def test_an_edit_replaces_the_old_text(stack):
    app, _, wagtail = stack
    old, new = words(2)
    page_id = wagtail.create_article(f"Edit {old}", article(old))
    assert eventually(lambda: found(app, old))
    wagtail.call(("edit", {"page_id": page_id, "body": article(new)}))
    assert eventually(lambda: found(app, new) and not found(app, old))


def test_unpublishing_removes_the_page_and_a_draft_never_appears(stack):
    app, _, wagtail = stack
    live, draft = words(2)
    page_id = wagtail.create_article(f"Unpub {live}", article(live))
    assert eventually(lambda: found(app, live))
    wagtail.call(("edit", {"page_id": page_id, "body": article(draft), "publish": False}))
    wagtail.unpublish(page_id)
    assert eventually(lambda: not found(app, live))
    never = wagtail.create_article(f"Never {draft}", article(draft), publish=False)
    time.sleep(2)
    assert never and found(app, draft) == []


def test_deleting_a_page_with_children_removes_them_all(stack):
    app, _, wagtail = stack
    parent_w, child_w, grandchild_w = words(3)
    parent = wagtail.create_article(f"Parent {parent_w}", article(parent_w))
    child = wagtail.create_article(f"Child {child_w}", article(child_w), parent_id=parent)
    wagtail.create_article(f"Grandchild {grandchild_w}", article(grandchild_w), parent_id=child)
    assert eventually(lambda: all(found(app, w) for w in (parent_w, child_w, grandchild_w)))
    wagtail.delete(parent)
    assert eventually(lambda: not any(found(app, w) for w in (parent_w, child_w, grandchild_w)))


def test_a_publish_while_the_receiver_is_down_is_caught_up_by_the_apps_retry(stack):
    app, receiver, wagtail = stack
    [w] = words()
    receiver.stop()
    try:
        wagtail.create_article(f"Down {w}", article(w))
        time.sleep(1)
        assert found(app, w) == []
    finally:
        receiver.start()
    wagtail.shell("import datetime\nfrom wagtail_cmsrag.models import PendingWebhook\n"
                  "PendingWebhook.objects.update(next_attempt_at=datetime.datetime(2000, 1, 1, "
                  "tzinfo=datetime.timezone.utc))")
    wagtail.manage("cmsrag_retry")
    assert eventually(lambda: found(app, w))


def test_a_lost_webhook_is_caught_up_by_reconcile(stack):
    app, receiver, wagtail = stack
    [w] = words()
    receiver.stop()
    try:
        wagtail.create_article(f"Lost {w}", article(w))
    finally:
        receiver.start()
    wagtail.shell("from wagtail_cmsrag.models import PendingWebhook\nPendingWebhook.objects.all().delete()")
    plan = reconcile_site(app, "www", dry_run=False, as_json=True)
    assert len(plan.new) >= 1
    assert eventually(lambda: found(app, w))
