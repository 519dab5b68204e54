"""Property: whatever a model writes, the answer's markers name returned citations, every citation was retrieved
for that request, and no link leaves the cited pages (hypothesis over model outputs, real index)."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.api.answer import Asker, AskRequest
from services.api.cache import AnswerCache
from services.api.citations import URL
from services.api.llm.fake import ScriptedModel
from services.cli.app import App
from services.embedder.pipeline import Pipeline
from shared.models import DocRef
from tests.integration.test_pipeline import SECTIONS, page, write

WORDS = st.sampled_from(["Descale", "the", "kettle", "monthly.", "It", "hums", "(see", "a[1]", "list[int]", "\n"])
MARKERS = st.integers(min_value=-1, max_value=12).map(lambda n: f"[{n}]")
LISTS = st.lists(st.integers(min_value=0, max_value=9), min_size=1, max_size=3).map(
    lambda ns: "[" + ", ".join(map(str, ns)) + "]")
LINKS = st.sampled_from(["https://evil.example/x", "www.evil.com", "evil.example", "http://docs.example.org/a",
                         "https://example.org/docs/frob.html#install", "https://example.org/docs/frob.html"])
TEXT = st.lists(st.one_of(WORDS, MARKERS, LISTS, LINKS), min_size=1, max_size=40).map(" ".join)
SPLITS = st.integers(min_value=1, max_value=7)


@pytest.fixture
def indexed(make_settings, db, site_dir):
    app = App(make_settings())
    write(site_dir, "frob.html", page("Frobnicator guide", SECTIONS))
    Pipeline(app.settings, app.db, app.embedder).sync(DocRef("docs", "frob.html"))
    yield app
    app.close()


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=TEXT, size=SPLITS)
def test_markers_citations_and_links_stay_honest_whatever_the_model_writes(indexed, text, size):
    pieces = [text[i:i + size] for i in range(0, len(text), size)]
    model = ScriptedModel(lambda _: pieces)
    asker = Asker(indexed.settings, indexed.db, indexed.embedder, model, AnswerCache(indexed.db, 0))
    events = list(asker.events(AskRequest("How do I descale the kettle when it hums?")))
    sources = {c["n"]: c for c in events[0][1]["citations"]}
    done = events[-1][1]
    assert sources, "the question must retrieve passages for the property to mean anything"
    streamed = "".join(d["text"] for e, d in events if e == "token")
    assert streamed.strip() == done["answer"] or done["refused"]
    markers = {int(n) for n in re.findall(r"(?<![\w)\]])\[(\d+)\]", done["answer"])}
    markers |= {int(n) for chain in re.findall(r"(?:\[\d+\]){2,}", done["answer"]) for n in re.findall(r"\d+", chain)}
    assert markers <= set(sources)
    assert {c["n"] for c in done["citations"]} == (markers if not done["refused"] else set())
    assert all(sources[c["n"]] == c for c in done["citations"])
    for url in URL.findall(done["answer"]):
        assert url.rstrip(".,;:!?").split("#")[0].rstrip("/").endswith("example.org/docs/frob.html")
