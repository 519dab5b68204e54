"""`/openapi.json` stays true: a valid OpenAPI 3.1 document, exactly the app's routes, and real responses match it."""

from __future__ import annotations

import re

import jsonschema
import pytest
from openapi_spec_validator import validate

from services.api.app import create_app
from services.cli.app import App
from services.embedder.pipeline import Pipeline
from shared.models import DocRef
from tests.integration.test_pipeline import SECTIONS, page, write


@pytest.fixture
def api(make_settings, db, site_dir):
    app = App(make_settings())
    write(site_dir, "frob.html", page("Frobnicator guide", SECTIONS))
    Pipeline(app.settings, app.db, app.embedder).sync(DocRef("docs", "frob.html"))
    flask_app = create_app(app)
    yield flask_app, flask_app.test_client()
    app.close()


def test_the_document_is_valid_openapi(api):
    validate(api[1].get("/openapi.json").get_json())


def test_the_document_lists_exactly_the_routes_the_app_serves(api):
    flask_app, client = api
    doc = client.get("/openapi.json").get_json()
    served = {(re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule), method.lower())
              for rule in flask_app.url_map.iter_rules() for method in rule.methods - {"HEAD", "OPTIONS"}}
    documented = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    assert served == documented


CALLS = [
    ("post", "/v1/search", {"json": {"query": "descale the kettle", "k": 2}}, 200),
    ("post", "/v1/search", {"json": {"query": ""}}, 422),
    ("post", "/v1/search", {"data": "x", "content_type": "text/plain"}, 415),
    ("post", "/v1/search", {"data": "{", "content_type": "application/json"}, 400),
    ("post", "/v1/ask", {"json": {"question": "How do I descale the kettle?"}}, 200),
    ("post", "/v1/ask", {"json": {"question": "x" * 5000}}, 413),
    ("post", "/v1/ask", {"json": {"question": "Why is the sky blue at noon?"}}, 200),
    ("get", "/v1/index/health", {}, 200),
    ("get", "/v1/index/health", {"query_string": {"check": "no"}}, 422),
    ("get", "/healthz", {}, 200),
    ("get", "/readyz", {}, 200),
]


@pytest.mark.parametrize(("method", "path", "kwargs", "status"), CALLS)
def test_real_responses_match_the_schema_documented_for_their_status(api, method, path, kwargs, status):
    _, client = api
    doc = client.get("/openapi.json").get_json()
    r = getattr(client, method)(path, **kwargs)
    assert r.status_code == status
    spec = doc["paths"][path][method]["responses"][str(status)]
    if "$ref" in spec:
        spec = doc["components"]["responses"][spec["$ref"].rsplit("/", 1)[1]]
    schema = dict(spec["content"]["application/json"]["schema"], components=doc["components"])
    jsonschema.validate(r.get_json(), {"$ref": "#/$defs/s", "$defs": {"s": schema}, **_root(doc)})


def _root(doc):
    """Make `#/components/...` references resolvable from a standalone schema."""
    return {"components": doc["components"]}


def test_a_documented_stream_answers_event_stream(api):
    r = api[1].post("/v1/ask/stream", json={"question": "How do I descale the kettle?"})
    assert r.status_code == 200 and r.mimetype == "text/event-stream"
