"""The query API as built so far (health, readiness, POST /v1/search): real database, Flask test client."""

from __future__ import annotations

import pytest

from services.api.app import create_app
from services.cli.app import App
from services.embedder.pipeline import Pipeline
from shared.models import DocRef
from tests.integration.test_pipeline import SECTIONS, page, write


@pytest.fixture
def client(make_settings, db, site_dir):
    app = App(make_settings())
    write(site_dir, "frob.html", page("Frobnicator guide", SECTIONS))
    Pipeline(app.settings, app.db, app.embedder).sync(DocRef("docs", "frob.html"))
    yield create_app(app).test_client()
    app.close()


def test_health_and_readiness_answer(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/readyz").get_json() == {"status": "ready"}


def test_search_returns_passages_with_deep_links(client):
    r = client.post("/v1/search", json={"query": "descale the kettle", "k": 2})
    assert r.status_code == 200
    results = r.get_json()["results"]
    assert results[0]["url"] == "https://example.org/docs/frob.html#troubleshoot"
    assert results[0]["title"] == "Frobnicator guide" and results[0]["snippet"]


@pytest.mark.parametrize(("kwargs", "status", "message"), [
    ({"data": "not json", "content_type": "text/plain"}, 415, "Content-Type: application/json"),
    ({"data": "{bad json", "content_type": "application/json"}, 400, "JSON object"),
    ({"json": ["a", "list"]}, 400, "JSON object"),
    ({"json": {}}, 422, "'query' must be a non-empty string"),
    ({"json": {"query": 42}}, 422, "'query' must be a non-empty string"),
    ({"json": {"query": "x" * 2001}}, 413, "limit is 2000"),
    ({"json": {"query": "x", "k": "5"}}, 422, "'k' must be an integer"),
    ({"json": {"query": "x", "k": 0}}, 422, "'k' must be an integer"),
    ({"json": {"query": "x", "k": True}}, 422, "'k' must be an integer"),
    ({"json": {"query": "x", "site": "nope"}}, 422, "unknown site"),
    ({"json": {"query": "x", "colour": "red"}}, 422, "unknown fields: colour"),
    ({"data": '{"query": "' + "x" * 70_000 + '"}', "content_type": "application/json"}, 413,
     "exceeds the capacity limit"),
])
def test_bad_search_requests_get_a_4xx_json_error_that_says_what_is_wrong(client, kwargs, status, message):
    r = client.post("/v1/search", **kwargs)
    assert r.status_code == status
    assert message in r.get_json()["error"]


def test_unknown_paths_and_methods_answer_json_too(client):
    assert client.get("/nope").status_code == 404 and "error" in client.get("/nope").get_json()
    assert client.get("/v1/search").status_code == 405
