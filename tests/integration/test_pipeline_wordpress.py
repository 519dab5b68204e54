"""The pipeline against recorded real WordPress answers served over real HTTP: what a bad CMS day does."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.embedder.pipeline import Pipeline
from shared.embedders.fake import FakeEmbedder
from shared.errors import PermanentError, TransientError
from shared.models import DocRef
from shared.sites import SiteConfig
from tests.fakes.cms_replay import ReplayServer, Reply

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "wordpress"
IDS = json.loads((FIXTURES / "ids.json").read_text())
CANARY = "CANARY-PRIVATE-7f3a"


@pytest.fixture
def replay() -> Iterator[ReplayServer]:
    with ReplayServer(FIXTURES) as server:
        yield server


@pytest.fixture
def pipeline(make_settings, db, replay) -> Pipeline:
    site = SiteConfig(name="blog", kind="wordpress", url=replay.url)
    return Pipeline(make_settings(sites=(site,)), db, FakeEmbedder())


def chunks_of(db, source_id: str) -> list[tuple]:
    with db.connection() as conn:
        return conn.execute("SELECT c.ordinal, c.content_hash FROM chunks c JOIN documents d ON d.id = c.document_id "
                            "WHERE d.source_id = %s ORDER BY 1", (source_id,)).fetchall()


def post_key(post_id: int) -> str:
    return f"/wp-json/wp/v2/posts/{post_id}"


def test_a_published_post_is_indexed_under_its_permalink(pipeline, db):
    outcome = pipeline.sync(DocRef("blog", f"posts:{IDS['post']}"))
    assert outcome.action == "indexed" and outcome.chunks > 0
    with db.connection() as conn:
        url, doc_type = conn.execute("SELECT url, doc_type FROM documents").fetchone()
    assert url.startswith(IDS["home_url"]) and doc_type == "post"


def test_an_html_page_instead_of_json_fails_permanently_and_keeps_what_was_indexed(pipeline, db, replay):
    ref = DocRef("blog", f"posts:{IDS['post']}")
    pipeline.sync(ref)
    before = chunks_of(db, ref.source_id)
    maintenance = Reply(200, b"<html><body>Briefly unavailable for maintenance</body></html>",
                        {"Content-Type": "text/html"})
    # Both routes to the post answer HTML (a maintenance page in front of the whole site).
    replay.add(post_key(IDS["post"]), maintenance)
    replay.add(f"/?rest_route=/wp/v2/posts/{IDS['post']}", maintenance)
    with pytest.raises(PermanentError, match="not JSON"):
        pipeline.sync(ref)
    assert chunks_of(db, ref.source_id) == before


def test_a_cms_that_keeps_failing_is_a_transient_error_and_keeps_what_was_indexed(pipeline, db, replay):
    ref = DocRef("blog", f"posts:{IDS['post']}")
    pipeline.sync(ref)
    before = chunks_of(db, ref.source_id)
    replay.add(post_key(IDS["post"]), Reply(503, b"overloaded"))
    with pytest.raises(TransientError, match="HTTP 503"):
        pipeline.sync(ref)
    assert chunks_of(db, ref.source_id) == before


@pytest.mark.parametrize("kind", ["draft", "private", "protected"])
def test_content_that_is_not_public_never_reaches_the_index(pipeline, db, kind):
    outcome = pipeline.sync(DocRef("blog", f"posts:{IDS[kind]}"))
    assert outcome.action in ("absent", "removed")
    with db.connection() as conn:
        leaked = conn.execute("SELECT count(*) FROM chunks WHERE text LIKE %s", (f"%{CANARY}%",)).fetchone()
    assert leaked == (0,)


def test_a_post_that_becomes_private_is_removed_on_the_next_sync(pipeline, db, replay):
    ref = DocRef("blog", f"posts:{IDS['post']}")
    pipeline.sync(ref)
    assert chunks_of(db, ref.source_id)
    replay.add(post_key(IDS["post"]), Reply.json(
        {"code": "rest_forbidden", "message": "Sorry, you are not allowed to do that.", "data": {"status": 401}}, 401))
    assert pipeline.sync(ref).action == "removed"
    assert chunks_of(db, ref.source_id) == []
