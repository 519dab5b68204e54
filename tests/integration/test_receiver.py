"""The webhook receiver against real Postgres and RabbitMQ: verify, validate, make durable, answer."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from werkzeug.serving import make_server

from services.cli.app import App
from services.cli.indexing import in_process_worker, wait_until_done
from shared.db import Database
from shared.signing import sign
from shared.sites import SiteConfig
from tests.conftest import delete_queues
from tests.fakes.cms_replay import ReplayServer

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "wordpress"
IDS = json.loads((FIXTURES / "ids.json").read_text())
SECRET = "s3cret-for-tests-0123456789"
NEW_SECRET = "whsec_" + "bmV3LXNlY3JldC1mb3ItdGVzdHMtMDEyMzQ1Njc4OQ=="


@pytest.fixture
def replay() -> Iterator[ReplayServer]:
    with ReplayServer(FIXTURES) as server:
        yield server


def sites(replay_url: str) -> tuple[SiteConfig, ...]:
    return (SiteConfig(name="blog", kind="wordpress", url=replay_url, webhook_secrets=(SECRET, NEW_SECRET)),
            SiteConfig(name="www", kind="wagtail", url="http://127.0.0.1:9", webhook_secrets=(SECRET,)))


@pytest.fixture
def app(make_settings, rabbitmq_url, db, replay) -> Iterator[App]:
    settings = make_settings(rabbitmq_url=rabbitmq_url, sites=sites(replay.url))
    application = App(settings, connect_broker_now=False)
    yield application
    application.close()
    delete_queues(rabbitmq_url, settings.queue_prefix)


@pytest.fixture
def client(app: App):
    return app.receiver().test_client()


def post(client, path: str, body: object, *, secrets=(SECRET,), webhook_id: str | None = None, **headers: str):
    raw = json.dumps(body).encode()
    signed = sign(list(secrets), webhook_id or f"wh_{uuid.uuid4().hex}", raw)
    return client.post(path, data=raw, headers={"Content-Type": "application/json", **signed, **headers})


def state(db: Database) -> tuple[int, int]:
    with db.connection() as conn:
        row = conn.execute("SELECT (SELECT count(*) FROM pending), (SELECT count(*) FROM webhook_deliveries)")
        pending, deliveries = row.fetchone() or (-1, -1)
        return int(pending), int(deliveries)


def test_a_signed_event_is_queued_and_recorded(client, db):
    r = post(client, "/webhooks/wordpress/blog", {"event": "updated", "id": "posts:21"})
    assert r.status_code == 202, r.get_json()
    assert r.get_json()["status"] == "queued"
    assert state(db) == (1, 1)


def test_a_repeated_delivery_is_accepted_once(client, db):
    first = post(client, "/webhooks/wordpress/blog", {"event": "updated", "id": "posts:21"}, webhook_id="wh_1")
    again = post(client, "/webhooks/wordpress/blog", {"event": "updated", "id": "posts:21"}, webhook_id="wh_1")
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.get_json()["status"] == "duplicate"
    with db.connection() as conn:
        assert conn.execute("SELECT requests FROM pending").fetchone() == (1,)


def test_either_secret_verifies_during_a_rotation(client):
    for secrets in ((SECRET,), (NEW_SECRET,), (NEW_SECRET, SECRET)):
        assert post(client, "/webhooks/wordpress/blog", {"event": "updated", "id": "posts:21"},
                    secrets=secrets).status_code == 202


def unsigned(client, path, data, content_type="application/json"):
    return client.post(path, data=data, headers={"Content-Type": content_type})


@pytest.mark.parametrize(("send", "status", "message"), [
    (lambda c: post(c, "/webhooks/wordpress/nope", {"event": "updated", "id": "posts:1"}), 404, "no wordpress site"),
    (lambda c: post(c, "/webhooks/wagtail/blog", {"event": "updated", "id": "1"}), 404, "no wagtail site"),
    (lambda c: post(c, "/webhooks/drupal/blog", {"event": "updated", "id": "1"}), 404, "no drupal site"),
    (lambda c: unsigned(c, "/webhooks/wordpress/blog", b'{"event": "updated", "id": "posts:1"}'), 401,
     "missing header(s): webhook-id, webhook-timestamp, webhook-signature"),
    (lambda c: post(c, "/webhooks/wordpress/blog", {"event": "updated", "id": "posts:1"}, secrets=("wrong" * 4,)),
     401, "no signature matches"),
    (lambda c: c.post("/webhooks/wordpress/blog", data=b"{}", headers={
        "Content-Type": "application/json", **sign([SECRET], "wh_old", b"{}", timestamp=int(time.time()) - 3600)}),
     401, "tolerance is 300s"),
    (lambda c: unsigned(c, "/webhooks/wordpress/blog", b"event=updated", "application/x-www-form-urlencoded"), 415,
     "Content-Type: application/json"),
    (lambda c: c.post("/webhooks/wordpress/blog", data=b"{not json", headers={
        "Content-Type": "application/json", **sign([SECRET], "wh_bad", b"{not json")}), 400, "not valid JSON"),
    (lambda c: post(c, "/webhooks/wordpress/blog", ["a"]), 422, "JSON object"),
    (lambda c: post(c, "/webhooks/wordpress/blog", {"event": "exploded", "id": "posts:1"}), 422, "'event' must be"),
    (lambda c: post(c, "/webhooks/wordpress/blog", {"event": "updated", "id": "12"}), 422, "e.g. 'posts:12'"),
    (lambda c: post(c, "/webhooks/wordpress/blog", {"event": "updated", "id": "posts:1; DROP"}), 422,
     "not a wordpress"),
    (lambda c: post(c, "/webhooks/wordpress/blog", {"event": "updated", "id": "posts:1", "html": "<p>"}), 422,
     "unknown fields: html"),
    (lambda c: post(c, "/webhooks/wordpress/blog", {"event": "updated", "id": "posts:1", "ids": ["posts:2"]}), 422,
     "only for 'deleted'"),
    (lambda c: post(c, "/webhooks/wordpress/blog", {"event": "updated", "id": "posts:1", "pad": "x" * 70_000}), 413,
     "exceeds the capacity limit"),
])
def test_a_bad_webhook_gets_a_4xx_that_says_why_and_queues_nothing(client, db, send, status, message):
    r = send(client)
    assert r.status_code == status
    assert message in r.get_json()["error"]
    assert state(db) == (0, 0)


def test_a_wagtail_subtree_delete_queues_a_removal_for_every_page(client, db):
    r = post(client, "/webhooks/wagtail/www", {"event": "deleted", "id": "5", "ids": ["6", "7", "6"]})
    assert r.status_code == 202 and r.get_json()["documents"] == 3
    with db.connection() as conn:
        assert conn.execute("SELECT source_id, event FROM pending ORDER BY 1").fetchall() == [
            ("5", "delete"), ("6", "delete"), ("7", "delete")]


def test_a_broker_that_is_down_gets_503_and_the_retry_is_not_a_duplicate(make_settings, db, replay, app, client):
    down = App(make_settings(rabbitmq_url="amqp://guest:guest@127.0.0.1:1/%2F", sites=sites(replay.url)),
               connect_broker_now=False)
    try:
        r = post(down.receiver().test_client(), "/webhooks/wordpress/blog", {"event": "updated", "id": "posts:21"},
                 webhook_id="wh_retry")
        assert r.status_code == 503 and r.headers["Retry-After"] == "30"
        assert state(db) == (1, 0), "no delivery record; the pending row stays for reconcile"
        assert down.receiver().test_client().get("/readyz").status_code == 503
    finally:
        down.close()
    r = post(client, "/webhooks/wordpress/blog", {"event": "updated", "id": "posts:21"}, webhook_id="wh_retry")
    assert r.status_code == 202


def test_a_database_that_is_down_gets_503(make_settings, rabbitmq_url, replay):
    settings = make_settings(rabbitmq_url=rabbitmq_url, sites=sites(replay.url))
    dead = Database("postgresql://postgres@127.0.0.1:1/nope")
    from services.ingest.receiver import create_app

    client = create_app(settings, dead, lambda: None).test_client()  # type: ignore[arg-type,return-value]
    r = post(client, "/webhooks/wordpress/blog", {"event": "updated", "id": "posts:21"})
    assert r.status_code == 503 and "Retry-After" in r.headers
    assert client.get("/readyz").status_code == 503
    assert client.get("/healthz").status_code == 200


def test_a_database_never_migrated_is_not_ready_and_webhooks_get_503(make_settings, rabbitmq_url, replay,
                                                                   unmigrated_url):
    settings = make_settings(rabbitmq_url=rabbitmq_url, sites=sites(replay.url))
    from services.ingest.receiver import create_app

    empty = Database(unmigrated_url).open()
    try:
        client = create_app(settings, empty, lambda: None).test_client()  # type: ignore[arg-type,return-value]
        r = client.get("/readyz")
        assert r.status_code == 503 and "webhook_deliveries" in r.get_json()["error"]
        r = post(client, "/webhooks/wordpress/blog", {"event": "updated", "id": "posts:21"})
        assert r.status_code == 503 and "Retry-After" in r.headers
    finally:
        empty.close()


def test_an_event_over_real_http_ends_up_searchable(app: App, db):
    server = make_server("127.0.0.1", 0, app.receiver(), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with in_process_worker(app):
            body = json.dumps({"event": "published", "id": f"posts:{IDS['post']}"}).encode()
            r = requests.post(f"http://127.0.0.1:{server.server_port}/webhooks/wordpress/blog", data=body,
                              headers={"Content-Type": "application/json", **sign([SECRET], "wh_http", body)},
                              timeout=10)
            assert r.status_code == 202
            assert wait_until_done(app, "blog", timeout=30, progress=False)
    finally:
        server.shutdown()
    with db.connection() as conn:
        assert conn.execute("SELECT source_id, status FROM documents").fetchall() == [(f"posts:{IDS['post']}",
                                                                                       "indexed")]


def test_a_burst_of_webhooks_for_one_save_costs_one_fetch(app: App, client, db, replay):
    for _ in range(4):  # one editor save: WordPress fires several hooks, each may reach us
        assert post(client, "/webhooks/wordpress/blog",
                    {"event": "updated", "id": f"posts:{IDS['post']}"}).status_code == 202
    with in_process_worker(app, threads=1):
        assert wait_until_done(app, "blog", timeout=30, progress=False)
    assert replay.hits(f"/wp-json/wp/v2/posts/{IDS['post']}") == 1
    with db.connection() as conn:
        assert conn.execute("SELECT count(*) FROM documents").fetchone() == (1,)
