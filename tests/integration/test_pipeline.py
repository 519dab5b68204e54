"""The pipeline against a real PostgreSQL + pgvector: fetch (files source) → clean → chunk → embed → store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.api.search import search
from services.embedder import store
from services.embedder.pipeline import Pipeline
from shared.db import Database
from shared.embedders.fake import FakeEmbedder
from shared.errors import PermanentError
from shared.models import DocRef, SourceDocument

SECTIONS = {
    "install": "Installing the frobnicator needs a working kettle. " * 8,
    "configure": "Configure the frobnicator by editing the teapot settings file. " * 8,
    "troubleshoot": "When the frobnicator hums, descale the kettle and restart it. " * 8,
}


def page(title: str, sections: dict[str, str]) -> str:
    body = "".join(f'<section id="{k}"><h2>{k.title()}</h2><p>{v}</p></section>' for k, v in sections.items())
    return f"<html><head><title>{title}</title></head><body><nav>Home | About</nav><main><h1>{title}</h1>" \
           f"{body}</main></body></html>"


def write(site_dir: Path, name: str, html: str | bytes) -> None:
    path = site_dir / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(html, bytes):
        path.write_bytes(html)
    else:
        path.write_text(html, encoding="utf-8")


@pytest.fixture
def embedder() -> FakeEmbedder:
    return FakeEmbedder(dimensions=384)


@pytest.fixture
def pipeline(make_settings, db: Database, embedder: FakeEmbedder) -> Pipeline:
    return Pipeline(make_settings(), db, embedder)


def chunk_rows(db: Database, source_id: str) -> list[tuple]:
    with db.connection() as conn:
        return conn.execute(
            "SELECT c.ordinal, c.content_hash, c.anchor, c.text FROM chunks c JOIN documents d ON d.id = c.document_id "
            "WHERE d.site = 'docs' AND d.source_id = %s ORDER BY c.ordinal", (source_id,)).fetchall()


def test_a_document_becomes_searchable_with_a_deep_link_to_its_section(pipeline, db, site_dir, embedder):
    write(site_dir, "guide/frob.html", page("Frobnicator guide", SECTIONS))
    outcome = pipeline.sync(DocRef("docs", "guide/frob.html"))
    assert outcome.action == "indexed"
    assert outcome.chunks >= 3
    rows = chunk_rows(db, "guide/frob.html")
    assert {r[2] for r in rows} >= {"install", "configure", "troubleshoot"}
    assert not any("Home | About" in r[3] for r in rows), "navigation chrome must not be indexed"
    query = "descale the kettle"
    with db.connection() as conn:
        hits = search(conn, embedder.embed([query])[0], query, k=3)
    assert hits[0].url == "https://example.org/docs/guide/frob.html"
    assert hits[0].link.endswith("#troubleshoot")


def test_an_unchanged_document_is_not_embedded_again(pipeline, db, site_dir, embedder):
    write(site_dir, "a.html", page("A", SECTIONS))
    first = pipeline.sync(DocRef("docs", "a.html"))
    calls = embedder.texts_embedded
    second = pipeline.sync(DocRef("docs", "a.html"))
    assert (first.action, second.action) == ("indexed", "unchanged")
    assert embedder.texts_embedded == calls
    assert second.stats.embedded == 0


def test_editing_one_paragraph_re_embeds_only_the_chunks_of_its_section(pipeline, db, site_dir, embedder):
    write(site_dir, "a.html", page("A", SECTIONS))
    pipeline.sync(DocRef("docs", "a.html"))
    before = {r[2]: r[1] for r in chunk_rows(db, "a.html")}
    edited = dict(SECTIONS, configure="Configure it with the new YAML file instead of the teapot. " * 8)
    write(site_dir, "a.html", page("A", edited))
    calls = embedder.texts_embedded
    outcome = pipeline.sync(DocRef("docs", "a.html"))
    after = {r[2]: r[1] for r in chunk_rows(db, "a.html")}
    changed = {a for a in after if after[a] != before.get(a)}
    assert outcome.action == "indexed"
    assert changed == {"configure"}
    assert embedder.texts_embedded - calls == outcome.stats.embedded == 1
    assert outcome.stats.reused == len(after) - 1


def test_a_deleted_document_loses_its_chunks_and_leaves_a_tombstone(pipeline, db, site_dir):
    write(site_dir, "gone.html", page("Gone", SECTIONS))
    pipeline.sync(DocRef("docs", "gone.html"))
    (site_dir / "gone.html").unlink()
    outcome = pipeline.sync(DocRef("docs", "gone.html"))
    assert outcome.action == "removed"
    assert chunk_rows(db, "gone.html") == []
    with db.connection() as conn:
        status = conn.execute("SELECT status FROM documents WHERE source_id = 'gone.html'").fetchone()
    assert status == ("removed",)


def test_a_delete_event_removes_without_fetching(pipeline, db, site_dir):
    write(site_dir, "x.html", page("X", SECTIONS))
    pipeline.sync(DocRef("docs", "x.html"))
    outcome = pipeline.sync(DocRef("docs", "x.html"), event="delete")
    assert outcome.action == "removed"
    assert chunk_rows(db, "x.html") == []


def doc(version: str, modified: datetime) -> SourceDocument:
    return SourceDocument(site="docs", source_id="v.html", url="https://example.org/v", title=f"V {version}",
                          html="", modified_at=modified)


def make_chunk(text: str):
    import hashlib

    import numpy as np

    from shared.models import Chunk

    return Chunk(ordinal=0, text=text, embed_text=text, heading_path=(), anchor=None, token_count=3,
                 content_hash=hashlib.sha256(text.encode()).hexdigest(), embedding=np.ones(384, dtype=np.float32))


def test_an_older_fetch_cannot_overwrite_a_newer_one(db):
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    with db.connection() as conn:
        assert store.upsert_document(conn, doc("2", t0 + timedelta(hours=1)), [make_chunk("version two")],
                                     checksum="c2", model_id="fake:fake-384", fetched_at=t0 + timedelta(seconds=10)) \
            == "indexed"
        # The fetch of version 1 began earlier but finishes later: it must not win.
        assert store.upsert_document(conn, doc("1", t0), [make_chunk("version one")], checksum="c1",
                                     model_id="fake:fake-384", fetched_at=t0 + timedelta(seconds=5)) == "stale"
        # A removal observed before the newer fetch must not win either.
        assert store.remove_document(conn, "docs", "v.html", reason="404",
                                     fetched_at=t0 + timedelta(seconds=7)) == "stale"
        row = conn.execute("SELECT d.title, c.text FROM documents d JOIN chunks c ON c.document_id = d.id").fetchall()
    assert row == [("V 2", "version two")]


def test_a_later_fetch_of_an_older_cms_version_is_refused(db):
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    with db.connection() as conn:
        store.upsert_document(conn, doc("2", t0 + timedelta(hours=1)), [make_chunk("version two")], checksum="c2",
                              model_id="fake:fake-384", fetched_at=t0)
        result = store.upsert_document(conn, doc("1", t0), [make_chunk("version one")], checksum="c1",
                                       model_id="fake:fake-384", fetched_at=t0 + timedelta(minutes=1))
        assert result == "stale"
        assert conn.execute("SELECT title FROM documents").fetchone() == ("V 2",)


def test_a_removed_document_cannot_be_revived_by_a_slow_older_fetch(db):
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    with db.connection() as conn:
        store.upsert_document(conn, doc("1", t0), [make_chunk("one")], checksum="c1", model_id="m", fetched_at=t0)
        assert store.remove_document(conn, "docs", "v.html", reason="unpublished",
                                     fetched_at=t0 + timedelta(seconds=20)) == "removed"
        assert store.upsert_document(conn, doc("1", t0), [make_chunk("one")], checksum="c1", model_id="m",
                                     fetched_at=t0 + timedelta(seconds=10)) == "stale"
        assert conn.execute("SELECT count(*) FROM chunks").fetchone() == (0,)


def test_an_oversized_document_fails_permanently_and_keeps_the_indexed_version(make_settings, db, site_dir,
                                                                                embedder):
    pipeline = Pipeline(make_settings(max_document_bytes=20_000), db, embedder)
    write(site_dir, "big.html", page("Big", SECTIONS))
    pipeline.sync(DocRef("docs", "big.html"))
    before = chunk_rows(db, "big.html")
    write(site_dir, "big.html", page("Big", {"huge": "lorem ipsum " * 5000}))
    with pytest.raises(PermanentError, match="cap"):
        pipeline.sync(DocRef("docs", "big.html"))
    assert chunk_rows(db, "big.html") == before


def test_an_empty_document_is_recorded_as_empty_with_no_chunks(pipeline, db, site_dir):
    write(site_dir, "empty.html", "<html><head><title>Empty</title></head><body><main>  </main></body></html>")
    outcome = pipeline.sync(DocRef("docs", "empty.html"))
    assert outcome.action == "empty"
    with db.connection() as conn:
        assert conn.execute("SELECT status, chunk_count FROM documents").fetchone() == ("empty", 0)


def test_non_utf8_bytes_are_indexed_without_losing_the_document(pipeline, db, site_dir):
    html = page("Caf\u00e9", {"menu": "Caf\u00e9 cr\u00e8me br\u00fbl\u00e9e and more. " * 5}).encode("latin-1")
    write(site_dir, "latin.html", html)
    outcome = pipeline.sync(DocRef("docs", "latin.html"))
    assert outcome.action == "indexed"
    assert any("cr" in r[3] for r in chunk_rows(db, "latin.html"))


def test_a_batch_embeds_all_documents_together_and_isolates_failures(make_settings, db, site_dir, embedder):
    pipeline = Pipeline(make_settings(max_document_bytes=20_000), db, embedder)
    for i in range(5):
        write(site_dir, f"p{i}.html", page(f"Page {i}", {f"s{i}": f"Unique topic number {i} explained. " * 6}))
    write(site_dir, "huge.html", page("Huge", {"x": "y " * 20_000}))
    calls = embedder.calls
    outcomes = pipeline.sync_batch("docs", [f"p{i}.html" for i in range(5)] + ["huge.html", "missing.html"])
    actions = {o.ref.source_id: o.action for o in outcomes}
    assert actions == {**{f"p{i}.html": "indexed" for i in range(5)}, "huge.html": "failed", "missing.html": "absent"}
    assert embedder.calls - calls == 1, "chunks of all documents go to the model in one call"
    assert sum(o.stats.embedded for o in outcomes) == sum(o.chunks for o in outcomes if o.action == "indexed")
