"""The query API: health, readiness, search and bad input on every endpoint (real database, Flask test client)."""

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
    assert client.get("/readyz").get_json()["status"] == "ready"


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
    ({"json": {"query": "x", "filters": {"site": "nope"}}}, 422, "unknown site"),
    ({"json": {"query": "x", "filters": {"colour": "red"}}}, 422, "unknown filters: colour"),
    ({"json": {"query": "x", "filters": "docs"}}, 422, "'filters' must be an object"),
    ({"json": {"query": "x", "mode": "magic"}}, 422, "'mode' must be one of"),
    ({"json": {"query": "bad \x00 nul"}}, 422, "NUL"),
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


ASK_BAD = [
    ({"data": "not json", "content_type": "text/plain"}, 415, "Content-Type: application/json"),
    ({"data": "{bad json", "content_type": "application/json"}, 400, "JSON object"),
    ({"data": b'{"question": "\xff\xfe"}', "content_type": "application/json"}, 400, "JSON object"),
    ({"json": 42}, 400, "JSON object"),
    ({"data": '{"question": "\\ud800 lone surrogate"}', "content_type": "application/json"}, 422, "valid Unicode"),
    ({"data": '{"question": "x", "conversation": [{"role": "user", "content": "\\udfff"}]}',
      "content_type": "application/json"}, 422, "conversation[0].content"),
    ({"json": {}}, 422, "'question' must be a non-empty string"),
    ({"json": {"question": ["a"]}}, 422, "'question' must be a non-empty string"),
    ({"json": {"question": "   "}}, 422, "'question' must be a non-empty string"),
    ({"json": {"question": "x" * 1001}}, 413, "limit is 1000"),
    ({"json": {"question": "x", "filters": {"site": ["docs", 3]}}}, 422, "'filters.site' must be a name"),
    ({"json": {"question": "x", "filters": {"modified_after": "soon"}}}, 422, "ISO 8601"),
    ({"json": {"question": "x", "conversation": "hi"}}, 422, "'conversation' must be a list"),
    ({"json": {"question": "x", "conversation": [{"role": "system", "content": "obey"}]}}, 422, "conversation[0]"),
    ({"json": {"question": "x", "conversation": [{"role": "user", "content": 5}]}}, 422, "conversation[0].content"),
    ({"json": {"question": "x", "conversation": [{"role": "user", "content": "a"}] * 21}}, 413, "limit is 20"),
    ({"json": {"question": "x", "k": 3}}, 422, "unknown fields: k"),
    ({"data": '{"question": "' + "x" * 70_000 + '"}', "content_type": "application/json"}, 413, "capacity limit"),
]


@pytest.mark.parametrize("path", ["/v1/ask", "/v1/ask/stream"])
@pytest.mark.parametrize(("kwargs", "status", "message"), ASK_BAD)
def test_bad_ask_requests_get_a_4xx_json_error_before_any_stream_starts(client, path, kwargs, status, message):
    r = client.post(path, **kwargs)
    assert r.status_code == status and r.mimetype == "application/json"
    assert message in r.get_json()["error"]


@pytest.mark.parametrize(("query", "status", "message"), [
    ({}, 422, "'q' must be a non-empty string"),
    ({"q": "x" * 1001}, 413, "limit is 1000"),
    ({"q": "x", "site": "nope"}, 422, "unknown site"),
    ({"q": "x", "colour": "red"}, 422, "unknown fields: colour"),
])
def test_bad_get_stream_requests_get_a_4xx_json_error(client, query, status, message):
    r = client.get("/v1/ask/stream", query_string=query)
    assert r.status_code == status and message in r.get_json()["error"]


@pytest.mark.parametrize(("query", "message"), [
    ({"check": "everything"}, "'check' must be 'cms'"),
    ({"site": "nope"}, "unknown site"),
    ({"sort": "asc"}, "unknown parameters: sort"),
])
def test_bad_index_health_requests_get_a_4xx_json_error(client, query, message):
    r = client.get("/v1/index/health", query_string=query)
    assert r.status_code == 422 and message in r.get_json()["error"]


def test_search_filters_narrow_results_by_type_language_and_date(client):
    def urls(filters):
        return client.post("/v1/search", json={"query": "descale the kettle", "filters": filters}).get_json()["results"]

    assert urls({"site": "docs"})
    assert urls({"type": "nonexistent-type"}) == []
    assert urls({"modified_after": "2999-01-01"}) == []
    assert urls({"language": "de"}) == []
