"""Keys, scopes, limits and CORS as a browser or client meets them over HTTP (real database, Flask test client)."""

from __future__ import annotations

import dataclasses

import pytest

from services.api.app import create_app
from services.api.keys import create_key, revoke_key
from services.cli.app import App
from services.embedder.pipeline import Pipeline
from shared.models import DocRef
from shared.query_settings import QuerySettings, Rate
from shared.sites import SiteConfig
from tests.integration.test_pipeline import SECTIONS, page, write

QUESTION = {"question": "How do I descale the kettle?"}


@pytest.fixture
def make_client(make_settings, db, site_dir, tmp_path):
    """A client over two indexed sites, `docs` and `blog`, with the query settings given."""
    apps = []
    blog_dir = tmp_path / "blog"
    write(site_dir, "frob.html", page("Frobnicator guide", SECTIONS))
    write(blog_dir, "kettle.html", page("Kettle news", {"news": "The kettle descaling story of the year. " * 8}))

    def make(**query):
        base = make_settings()
        sites = (*base.sites, SiteConfig(name="blog", kind="files", path=blog_dir, url="https://blog.example.org/"))
        q = QuerySettings(**{"public_rate": Rate(100_000, 10_000), "min_similarity": 0.2, **query})
        app = App(dataclasses.replace(base, sites=sites, query=q))
        apps.append(app)
        pipeline = Pipeline(app.settings, app.db, app.embedder)
        pipeline.sync(DocRef("docs", "frob.html"))
        pipeline.sync(DocRef("blog", "kettle.html"))
        return app, create_app(app).test_client()

    yield make
    for a in apps:
        a.close()


def new_key(app, **kw):
    with app.db.connection() as conn:
        raw, _ = create_key(conn, kw.pop("name", "test"), kw.pop("sites", None), kw.pop("rate", None))
    return raw


def test_a_key_works_as_a_bearer_token_or_an_x_api_key_header(make_client):
    app, client = make_client(public_access=False)
    raw = new_key(app)
    assert client.post("/v1/ask", json=QUESTION, headers={"Authorization": f"Bearer {raw}"}).status_code == 200
    assert client.post("/v1/search", json={"query": "kettle"}, headers={"X-API-Key": raw}).status_code == 200


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}, {"X-API-Key": "cmsrag_aaaaaaaa_" + "b" * 43},
                                     {"Authorization": "Basic dXNlcjpwYXNz"}])
def test_a_private_api_refuses_missing_and_bad_keys_with_401(make_client, headers):
    _, client = make_client(public_access=False)
    for path in ("/v1/ask", "/v1/ask/stream"):
        r = client.post(path, json=QUESTION, headers=headers)
        assert r.status_code == 401 and r.mimetype == "application/json" and r.get_json()["error"]
        assert r.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_bad_key_is_refused_even_when_the_api_is_public(make_client):
    _, client = make_client(public_access=True)
    assert client.post("/v1/ask", json=QUESTION, headers={"X-API-Key": "wrong"}).status_code == 401


def test_a_revoked_key_stops_working_at_once(make_client):
    app, client = make_client(public_access=False)
    raw = new_key(app)
    headers = {"X-API-Key": raw}
    assert client.post("/v1/search", json={"query": "kettle"}, headers=headers).status_code == 200
    with app.db.connection() as conn:
        revoke_key(conn, raw.split("_")[1])
    r = client.post("/v1/search", json={"query": "kettle"}, headers=headers)
    assert r.status_code == 401 and "revoked" in r.get_json()["error"]


def test_a_key_scoped_to_one_site_sees_only_that_site_and_is_refused_another(make_client):
    app, client = make_client(public_access=False)
    headers = {"X-API-Key": new_key(app, sites=["blog"])}
    results = client.post("/v1/search", json={"query": "kettle descale", "k": 20}, headers=headers).get_json()
    assert results["results"] and {r["site"] for r in results["results"]} == {"blog"}
    body = client.post("/v1/ask", json=QUESTION, headers=headers).get_json()
    assert body["citations"] and all(c["url"].startswith("https://blog.example.org/") for c in body["citations"])
    r = client.post("/v1/ask", json={**QUESTION, "filters": {"site": "docs"}}, headers=headers)
    assert r.status_code == 403 and "may not read site 'docs'" in r.get_json()["error"]
    health = client.get("/v1/index/health", headers=headers).get_json()
    assert [s["site"] for s in health["sites"]] == ["blog"]
    assert client.get("/v1/index/health?site=docs", headers=headers).status_code == 403


def test_a_public_burst_over_the_limit_gets_429_with_retry_after_and_other_clients_are_unaffected(make_client):
    _, client = make_client(public_rate=Rate(6, 2))
    one = {"REMOTE_ADDR": "203.0.113.5"}
    codes = [client.post("/v1/search", json={"query": "kettle"}, environ_base=one).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    r = client.post("/v1/ask/stream", json=QUESTION, environ_base=one)
    assert r.status_code == 429 and 1 <= int(r.headers["Retry-After"]) <= 10
    assert r.get_json()["retry_after"] == int(r.headers["Retry-After"])
    other = client.post("/v1/search", json={"query": "kettle"}, environ_base={"REMOTE_ADDR": "203.0.113.6"})
    assert other.status_code == 200 and other.headers["RateLimit-Limit"] == "2"


def test_a_key_has_its_own_limit_apart_from_the_public_one(make_client):
    app, client = make_client(public_rate=Rate(6, 1))
    headers = {"X-API-Key": new_key(app, rate="60/min,burst=3")}
    codes = [client.post("/v1/search", json={"query": "kettle"}, headers=headers).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    assert client.post("/v1/search", json={"query": "kettle"}).status_code == 200


def test_health_probes_are_never_rate_limited(make_client):
    _, client = make_client(public_rate=Rate(1, 1), public_access=False)
    assert all(client.get("/healthz").status_code == 200 for _ in range(5))
    assert all(client.get("/readyz").status_code == 200 for _ in range(5))


def test_the_widget_origin_gets_cors_headers_and_other_origins_do_not(make_client):
    _, client = make_client(allowed_origins=("https://example.org",))
    pre = client.options("/v1/ask/stream", headers={"Origin": "https://example.org",
                                                    "Access-Control-Request-Method": "POST"})
    assert pre.status_code == 204 and pre.headers["Access-Control-Allow-Origin"] == "https://example.org"
    assert "X-API-Key" in pre.headers["Access-Control-Allow-Headers"]
    ok = client.post("/v1/ask", json=QUESTION, headers={"Origin": "https://example.org"})
    assert ok.headers["Access-Control-Allow-Origin"] == "https://example.org"
    assert "Retry-After" in ok.headers["Access-Control-Expose-Headers"]
    other = client.post("/v1/ask", json=QUESTION, headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers and other.headers["Vary"] == "Origin"


def test_the_widget_and_chat_page_are_served(make_client):
    _, client = make_client()
    assert "cmsrag" in client.get("/").get_data(as_text=True)
    js = client.get("/widget.js")
    assert js.status_code == 200 and "javascript" in js.mimetype and js.headers["Access-Control-Allow-Origin"] == "*"
    assert client.get("/widget.css").status_code == 200
