"""`/v1/ask` and its streams against a real index: grounded answers, honest citations, a cache that never goes stale.

Real Postgres + pgvector, the fake embedder, the extractive model by default; the real `openai` and `anthropic`
SDKs talk to local fake servers where a language model is wanted.
"""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from services.api.app import create_app
from services.api.prompt import NO_ANSWER
from services.cli.app import App
from services.embedder.pipeline import Pipeline
from shared.models import DocRef
from shared.query_settings import QuerySettings, Rate
from tests.fakes.anthropic_server import FakeAnthropicServer
from tests.fakes.openai_server import FakeOpenAIServer
from tests.integration.test_pipeline import SECTIONS, page, write

QUESTIONS = ["How do I descale the kettle when the frobnicator hums?", "How do I configure the frobnicator?",
             "What does installing the frobnicator need?", "frobnicator teapot settings file"]
OFF_TOPIC = "What is the airspeed velocity of an unladen swallow?"


def sse_events(body: str) -> list[tuple[str, dict]]:
    out = []
    for block in body.split("\n\n"):
        lines = [x for x in block.splitlines() if not x.startswith(":")]
        if lines:
            event = lines[0].removeprefix("event: ")
            out.append((event, json.loads("".join(x.removeprefix("data: ") for x in lines[1:]))))
    return out


@pytest.fixture
def cms(make_settings, db, site_dir):
    """An App over one indexed page, plus `reindex(sections)` to edit it the way the pipeline does."""
    apps = []

    def build(**query):
        defaults = {"public_rate": Rate(100_000, 10_000), "min_similarity": 0.2}
        app = App(make_settings(query=QuerySettings(**{**defaults, **query})))
        apps.append(app)
        return app

    app = build()
    pipeline = Pipeline(app.settings, app.db, app.embedder)

    def reindex(sections=SECTIONS, name="frob.html", title="Frobnicator guide"):
        write(site_dir, name, page(title, sections))
        return pipeline.sync(DocRef("docs", name))

    reindex()
    yield app, build, reindex
    for a in apps:
        a.close()


@pytest.fixture
def client(cms):
    return create_app(cms[0]).test_client()


def test_an_answer_cites_only_passages_retrieved_for_it_and_every_marker_has_a_citation(client):
    for question in QUESTIONS:
        r = client.post("/v1/ask", json={"question": question})
        assert r.status_code == 200, r.get_json()
        body = r.get_json()
        assert not body["refused"] and body["mode"] == "extractive"
        markers = {int(n) for n in re.findall(r"\[(\d+)\]", body["answer"])}
        numbers = {c["n"] for c in body["citations"]}
        assert markers and markers == numbers
        search = client.post("/v1/search", json={"query": question, "k": 6}).get_json()["results"]
        assert {c["url"] for c in body["citations"]} <= {h["url"] for h in search}
        assert all(c["url"].startswith("https://example.org/docs/frob.html#") for c in body["citations"])


def test_a_question_the_site_cannot_answer_gets_a_clear_no_and_no_citations(client):
    body = client.post("/v1/ask", json={"question": OFF_TOPIC}).get_json()
    assert body["answer"] == NO_ANSWER and body["citations"] == [] and body["refused"] is True


def test_the_stream_sends_sources_then_tokens_then_done_with_the_final_citations(client):
    r = client.post("/v1/ask/stream", json={"question": QUESTIONS[0]})
    assert r.status_code == 200 and r.mimetype == "text/event-stream"
    assert r.headers["X-Accel-Buffering"] == "no" and "no-cache" in r.headers["Cache-Control"]
    events = sse_events(r.get_data(as_text=True))
    names = [e for e, _ in events]
    assert names[0] == "sources" and names[-1] == "done" and set(names[1:-1]) == {"token"} and len(names) > 3
    done = events[-1][1]
    assert "".join(d["text"] for e, d in events if e == "token").strip() == done["answer"]
    retrieved = {c["n"]: c for c in events[0][1]["citations"]}
    assert done["citations"] and all(retrieved[c["n"]] == c for c in done["citations"])


def test_the_get_stream_for_eventsource_answers_the_same(client):
    r = client.get("/v1/ask/stream", query_string={"q": QUESTIONS[1], "site": "docs"})
    events = sse_events(r.get_data(as_text=True))
    post = client.post("/v1/ask", json={"question": QUESTIONS[1], "filters": {"site": "docs"}}).get_json()
    assert events[-1][0] == "done" and events[-1][1]["answer"] == post["answer"]


def test_a_repeated_question_is_served_from_the_cache(client, cms):
    first = client.post("/v1/ask", json={"question": QUESTIONS[0]}).get_json()
    again = client.post("/v1/ask", json={"question": "  how do i DESCALE the kettle when the frobnicator hums "})
    again = again.get_json()
    assert first["cached"] is False and again["cached"] is True
    assert again["answer"] == first["answer"] and again["citations"] == first["citations"]


def test_an_edit_to_a_cited_passage_evicts_the_cached_answer_at_once(client, cms):
    _, _, reindex = cms
    client.post("/v1/ask", json={"question": QUESTIONS[0]})
    with cms[0].db.connection() as conn:
        assert conn.execute("SELECT count(*) FROM answer_cache").fetchone() == (1,)
    edited = dict(SECTIONS, troubleshoot="When the frobnicator hums, unplug it and call support. " * 8)
    assert reindex(edited).action == "indexed"
    with cms[0].db.connection() as conn:
        assert conn.execute("SELECT count(*) FROM answer_cache").fetchone() == (0,)
    after = client.post("/v1/ask", json={"question": QUESTIONS[0]}).get_json()
    assert after["cached"] is False and "descale" not in after["answer"]


def test_unpublishing_a_page_removes_every_cached_answer_built_from_it(client, cms, site_dir):
    client.post("/v1/ask", json={"question": QUESTIONS[1]})
    (site_dir / "frob.html").unlink()
    Pipeline(cms[0].settings, cms[0].db, cms[0].embedder).sync(DocRef("docs", "frob.html"))
    with cms[0].db.connection() as conn:
        assert conn.execute("SELECT count(*) FROM answer_cache").fetchone() == (0,)
    body = client.post("/v1/ask", json={"question": QUESTIONS[1]}).get_json()
    assert body["refused"] and body["citations"] == []


def test_a_cached_answer_is_never_stored_for_passages_deleted_while_answering(cms):
    from services.api.cache import AnswerCache

    app = cms[0]
    with app.db.connection() as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM chunks ORDER BY id")]
        conn.execute("DELETE FROM chunks WHERE id = %s", (ids[0],))
    assert AnswerCache(app.db, 3600).put("k", "q", {"answer": "x"}, ids) is False
    assert AnswerCache(app.db, 3600).put("k", "q", {"answer": "x"}, ids[1:]) is True


def test_private_content_never_appears_in_search_answers_or_the_cache(cms):
    app = cms[0]
    sample = App(dataclasses.replace(app.settings, sites=(*app.settings.sites, _sample_site())))
    try:
        pipeline = Pipeline(sample.settings, sample.db, sample.embedder)
        from shared.sources import make_source

        for doc in make_source(sample.settings.site("sample"), sample.settings).list_documents():
            pipeline.sync(DocRef("sample", doc.source_id))
        c = create_app(sample).test_client()
        canary = "CANARY-PRIVATE-7f3a"
        for question in (canary, f"What does {canary} say?", "private draft password protected post"):
            results = c.post("/v1/search", json={"query": question, "k": 50}).get_json()["results"]
            assert canary not in json.dumps(results)
            assert canary not in c.post("/v1/ask", json={"question": question}).get_data(as_text=True)
            assert canary not in c.post("/v1/ask/stream", json={"question": question}).get_data(as_text=True)
        with sample.db.connection() as conn:
            assert conn.execute("SELECT count(*) FROM answer_cache WHERE response::text LIKE %s",
                                (f"%{canary}%",)).fetchone() == (0,)
            assert conn.execute("SELECT count(*) FROM chunks WHERE text LIKE %s", (f"%{canary}%",)).fetchone() == (0,)
    finally:
        sample.close()


def _sample_site():
    from shared.settings import PROJECT_ROOT
    from shared.sites import SiteConfig

    return SiteConfig(name="sample", kind="wxr", path=PROJECT_ROOT / "samples/python-tutorial.wxr",
                      url="https://sample.example.org/")


def test_an_llm_answer_streams_through_the_real_openai_sdk_and_is_filtered(cms):
    _, build, _ = cms

    def answer(messages):
        return ("Descale the kettle [1]. Ignore that, see https://evil.example/x and passage [42]. "
                "It hums when scaled [2].")

    with FakeOpenAIServer(answer=answer) as srv:
        app = build(llm="openai-compatible", llm_model="llama3.1", llm_base_url=srv.base_url, llm_api_key="x")
        body = create_app(app).test_client().post("/v1/ask", json={"question": QUESTIONS[0]}).get_json()
    assert body["mode"] == "openai-compatible" and body["fallback"] is False
    assert "evil.example" not in body["answer"] and "[42]" not in body["answer"]
    assert [c["n"] for c in body["citations"]] == [1, 2]
    assert body["usage"]["output_tokens"] > 0


def test_an_anthropic_answer_counts_tokens_and_cost(cms):
    _, build, _ = cms
    with FakeAnthropicServer(answer=lambda m: "Descale the kettle [1].") as srv:
        app = build(llm="anthropic", llm_model="claude-sonnet-4-6", llm_base_url=srv.base_url, llm_api_key="x")
        r = create_app(app).test_client().post("/v1/ask/stream", json={"question": QUESTIONS[0]})
        events = sse_events(r.get_data(as_text=True))
        sent = srv.bodies[-1]
    done = events[-1][1]
    assert done["mode"] == "anthropic" and done["answer"] == "Descale the kettle [1]."
    assert done["usage"]["input_tokens"] > 0 and done["usage"]["cost_usd"] > 0
    assert "passage" in json.dumps(sent["messages"]) and sent["system"]


def test_a_model_that_fails_before_answering_is_replaced_by_the_extractive_answer(cms):
    _, build, _ = cms
    with FakeOpenAIServer() as srv:
        srv.fail_next(503, 10)
        app = build(llm="openai-compatible", llm_base_url=srv.base_url, llm_api_key="x", llm_timeout=5)
        body = create_app(app).test_client().post("/v1/ask", json={"question": QUESTIONS[0]}).get_json()
    assert body["fallback"] is True and body["mode"] == "extractive" and body["citations"]


def test_a_failure_after_the_stream_started_becomes_an_error_event():
    from services.api.sse import event_stream
    from shared.errors import LanguageModelError

    def events():
        yield "sources", {"citations": []}
        yield "token", {"text": "Half an"}
        raise LanguageModelError("connection reset", retryable=True)

    from flask import Flask

    with Flask("t").test_request_context():
        body = "".join(event_stream(events()).response)  # type: ignore[arg-type]
    assert [e for e, _ in sse_events(body)] == ["sources", "token", "error"]
    assert sse_events(body)[-1][1]["status"] == 503


def test_index_health_reports_documents_freshness_and_drift(client, cms, site_dir):
    body = client.get("/v1/index/health").get_json()
    [docs] = body["sites"]
    assert docs["site"] == "docs" and docs["documents"] == 1 and docs["drift"]["pending"] == 0
    write(site_dir, "new.html", page("New page", {"intro": "A brand new page about teapots. " * 5}))
    checked = client.get("/v1/index/health?check=cms").get_json()
    assert checked["sites"][0]["drift"]["missing_from_index"] == 1 and checked["status"] == "degraded"


def test_a_question_naming_a_term_the_site_never_mentions_is_refused_in_a_large_site(client, monkeypatch):
    import services.api.answer as answer

    monkeypatch.setattr(answer, "LARGE_CORPUS", 1)  # the test site is one page; the rule needs a large one
    body = client.post("/v1/ask", json={"question": "descale the kettle with matplotlib"}).get_json()
    assert body["refused"] and body["citations"] == []
    body = client.post("/v1/ask", json={"question": "descale the kettle when it hums"}).get_json()
    assert not body["refused"] and body["citations"]


def test_a_term_the_site_lacks_does_not_refuse_a_small_site(client):
    body = client.post("/v1/ask", json={"question": "descale the kettle with matplotlib"}).get_json()
    assert not body["refused"]
