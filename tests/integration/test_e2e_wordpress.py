"""End to end with a real WordPress: editors' actions → our plugin's signed webhooks → our receiver → RabbitMQ →
a worker (local embedding model) fetching from the WordPress REST API → pgvector → what `cmsrag search` returns.

One WordPress (Debian's package, MariaDB, `php -S`), one receiver and one worker serve the whole module; each test
uses its own unique words.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from services.cli.app import App
from services.cli.indexing import in_process_worker, reconcile_site
from shared.settings import Settings
from shared.sites import SiteConfig
from tests.cms.wordpress import WordPressServer
from tests.conftest import TABLES, delete_queues, unavailable
from tests.integration.live_receiver import LiveReceiver
from tests.integration.test_e2e_wagtail import eventually, found, words
from tests.integration.test_wordpress_plugin import PLUGIN, WORDPRESS_TREE

SECRET = "e2e-wordpress-secret-0123456789"
CANARY = "CANARY-PRIVATE-7f3a"
pytestmark = pytest.mark.slow


def reset_index(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {TABLES}, index_config RESTART IDENTITY CASCADE")
        conn.execute("DROP INDEX IF EXISTS chunks_embedding_hnsw")
        conn.execute("ALTER TABLE chunks DROP COLUMN IF EXISTS embedding")


@pytest.fixture(scope="module")
def stack(pg_url: str, rabbitmq_url: str, tmp_path_factory) -> Iterator[tuple[App, LiveReceiver, WordPressServer]]:
    missing = [t for t in ("php", "mariadbd", "mariadb-install-db") if not shutil.which(t)]
    if missing or not WORDPRESS_TREE.is_dir():
        unavailable("WordPress (Debian: wordpress, php, mariadb-server)", f"missing {missing or WORDPRESS_TREE}")
    reset_index(pg_url)
    wp = WordPressServer(tmp_path_factory.mktemp("e2e-wp")).start()
    site = SiteConfig(name="blog", kind="wordpress", url=wp.base_url, webhook_secrets=(SECRET,))
    settings = dataclasses.replace(Settings(sites=(site,)), database_url=pg_url, rabbitmq_url=rabbitmq_url,
                                   queue_prefix=f"e2ewp{uuid.uuid4().hex[:8]}", min_backoff_ms=100,
                                   max_backoff_ms=1000, data_dir=tmp_path_factory.mktemp("data"))
    app = App(settings, connect_broker_now=False)
    receiver = LiveReceiver(app)
    try:
        app.migrate()
        receiver.start()
        wp.install_plugin(PLUGIN)
        config = {"receiver_url": f"http://127.0.0.1:{receiver.port}", "site": "blog", "secrets": [SECRET]}
        wp.php(f"update_option('cmsrag_webhooks_settings', json_decode('{json.dumps(config)}', true));")
        with in_process_worker(app):
            yield app, receiver, wp
    finally:
        receiver.stop()
        wp.stop()
        app.close()
        delete_queues(rabbitmq_url, settings.queue_prefix)
        reset_index(pg_url)
        from shared.migrate import ensure_embedding_column

        with psycopg.connect(pg_url, autocommit=True) as conn:
            ensure_embedding_column(conn, "fake:fake-384", 384)


def insert(wp: WordPressServer, word: str, *, status: str = "publish", post_type: str = "post",
           password: str = "") -> int:
    content = f"<!-- wp:heading --><h2 id=\"about\">About {word}</h2><!-- /wp:heading -->" \
              f"<!-- wp:paragraph --><p>The {word} is explained here.</p><!-- /wp:paragraph -->"
    post = {"post_title": f"Post {word}", "post_content": content, "post_status": status, "post_type": post_type,
            "post_password": password}
    return int(wp.php(f"echo wp_insert_post(wp_slash(json_decode('{json.dumps(post)}', true)), true);").strip())


def update(wp: WordPressServer, post_id: int, **fields: str) -> None:
    wp.php(f"wp_update_post(wp_slash(array_merge(['ID' => {post_id}], json_decode('{json.dumps(fields)}', true))));")


def test_a_published_post_becomes_searchable_at_its_permalink(stack):
    app, _, wp = stack
    [w] = words()
    insert(wp, w)
    assert eventually(lambda: found(app, w))
    assert found(app, w)[0].startswith(wp.base_url)


def test_an_edit_replaces_the_old_text_and_a_page_works_too(stack):
    app, _, wp = stack
    old, new = words(2)
    page_id = insert(wp, old, post_type="page")
    assert eventually(lambda: found(app, old))
    update(wp, page_id, post_content=f"<p>Now the {new} is explained instead.</p>")
    assert eventually(lambda: found(app, new) and not found(app, old))


def test_unpublish_trash_restore_and_delete_follow_the_cms(stack):
    app, _, wp = stack
    [w] = words()
    post_id = insert(wp, w)
    assert eventually(lambda: found(app, w))
    update(wp, post_id, post_status="draft")
    assert eventually(lambda: not found(app, w)), "unpublished post still searchable"
    update(wp, post_id, post_status="publish")
    assert eventually(lambda: found(app, w)), "republished post not searchable"
    wp.php(f"wp_trash_post({post_id});")
    assert eventually(lambda: not found(app, w)), "trashed post still searchable"
    wp.php(f"wp_untrash_post({post_id}); wp_publish_post({post_id});")
    assert eventually(lambda: found(app, w)), "restored post not searchable"
    wp.php(f"wp_delete_post({post_id}, true);")
    assert eventually(lambda: not found(app, w)), "deleted post still searchable"


def test_private_password_protected_and_draft_posts_never_appear(stack):
    app, _, wp = stack
    [w] = words()
    insert(wp, f"{CANARY} {w}", status="private")
    insert(wp, f"{CANARY} {w}", password="hunter2")
    insert(wp, f"{CANARY} {w}", status="draft")
    [marker] = words()
    insert(wp, marker)  # a public post sent after them: once it is searchable, the others were processed
    assert eventually(lambda: found(app, marker))
    assert found(app, w) == []
    with app.db.connection() as conn:
        assert conn.execute("SELECT count(*) FROM chunks WHERE text LIKE %s", (f"%{CANARY}%",)).fetchone() == (0,)


def test_a_publish_while_the_receiver_is_down_is_delivered_by_the_plugins_retry(stack):
    app, receiver, wp = stack
    [w] = words()
    receiver.stop()
    try:
        insert(wp, w)
        time.sleep(0.5)
        assert found(app, w) == []
    finally:
        receiver.start()  # same port: the plugin's settings still point at it
    summary = json.loads(wp.php("add_filter('cmsrag_webhooks_now', function ($t) { return $t + 7200; });"
                                "echo json_encode(cmsrag_webhooks_retry_now());"))
    assert summary["delivered"] >= 1
    assert eventually(lambda: found(app, w))


def test_a_lost_webhook_is_caught_up_by_reconcile(stack):
    app, receiver, wp = stack
    [w] = words()
    receiver.stop()
    try:
        insert(wp, w)
    finally:
        receiver.start()
    wp.php("foreach (['cmsrag_webhooks_queue', 'cmsrag_webhooks_next_retry'] as $o) { delete_option($o); }")
    plan = reconcile_site(app, "blog", dry_run=False, as_json=True)
    assert len(plan.new) >= 1
    assert eventually(lambda: found(app, w))
