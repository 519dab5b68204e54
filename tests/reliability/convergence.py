"""Does the index hold exactly the public content of the CMS? The pass criterion of every fault scenario.

The truth is asked of the CMS itself, through the same source the workers use (its listing, then a fetch of each
listed document), and each public document is cleaned and chunked as the pipeline would: the checksum it would
store (content, metadata, chunking settings and model: `Pipeline.checksum`) and its chunks' content hashes are
what the index must hold. Then, per document:

- **lost**: public in the CMS, but the index has no current row for it (missing, or a `removed` tombstone);
- **stale**: indexed, but its checksum is another version's;
- **duplicated**: its chunks are not exactly one version's — a repeated (document, ordinal), a chunk count that
  disagrees with the row, or chunks whose hashes do not add up to the row's own checksum (two versions mixed, or
  the chunks of a version the row no longer describes);
- **leaked**: the index serves chunks of a document the CMS does not show the public.

`torn_documents` is the same "do the chunks add up to the row" check without asking the CMS, for use while
faults are still being played (a document may be behind then, never torn).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg

from services.embedder.chunk import chunk
from services.embedder.clean import clean
from services.embedder.pipeline import Pipeline
from shared.embedders import Embedder
from shared.errors import NotPublic
from shared.models import Chunk, SourceDocument
from shared.settings import Settings
from shared.sources import make_source

LIVE = ("indexed", "empty")


@dataclass
class Report:
    public: int = 0
    current: int = 0
    lost: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    leaked: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {"lost": len(self.lost), "stale": len(self.stale), "duplicated": len(self.duplicated),
                "leaked": len(self.leaked)}

    @property
    def converged(self) -> bool:
        return not any(self.counts().values())

    def __str__(self) -> str:
        shown = {k: v[:5] for k, v in vars(self).items() if isinstance(v, list) and v}
        return f"{self.current}/{self.public} public documents current; {self.counts()} e.g. {shown}"


@dataclass(frozen=True)
class Stored:
    """One `documents` row and its chunks as (ordinal, content hash, anchor, heading path)."""

    source_id: str
    status: str
    checksum: str | None
    chunk_count: int
    doc: SourceDocument
    model: str | None
    chunks: tuple[tuple[int, str, str | None, tuple[str, ...]], ...]


def checksum(settings: Settings, embedder: Embedder, doc: SourceDocument, chunks: list[Chunk]) -> str:
    """The checksum the pipeline stores for `doc` cut into `chunks` (its own function, not a copy of it)."""
    return Pipeline(settings, None, embedder).checksum(doc, chunks)  # type: ignore[arg-type]  # no db needed


def expected(settings: Settings, embedder: Embedder, site: str) -> dict[str, tuple[str, list[str]]]:
    """The CMS's public documents now: source id → (checksum the index must hold, chunk hashes in order)."""
    source = make_source(settings.site(site), settings)
    truth = {}
    for listed in source.list_documents():
        try:
            doc = source.fetch(listed.source_id)
        except NotPublic:  # unpublished between the listing and the fetch
            continue
        chunks = chunk(doc.title, clean(doc.html, doc.title), max_tokens=settings.chunk_tokens,
                       overlap=settings.chunk_overlap, count_model_tokens=embedder.count_tokens,
                       model_max_tokens=embedder.max_input_tokens)
        truth[doc.source_id] = (checksum(settings, embedder, doc, chunks), [c.content_hash for c in chunks])
    return truth


def stored(conn: psycopg.Connection[Any], site: str) -> dict[str, Stored]:
    """What the index holds for `site`; call inside a REPEATABLE READ transaction for one consistent state."""
    chunks: dict[int, list[tuple[int, str, str | None, tuple[str, ...]]]] = {}
    for doc_id, ordinal, content_hash, anchor, path in conn.execute(
            "SELECT c.document_id, c.ordinal, c.content_hash, c.anchor, c.heading_path FROM chunks c "
            "JOIN documents d ON d.id = c.document_id WHERE d.site = %s ORDER BY c.document_id, c.ordinal",
            (site,)):
        chunks.setdefault(doc_id, []).append((ordinal, content_hash, anchor, tuple(path)))
    result = {}
    for doc_id, sid, status, checksum, count, url, title, doc_type, language, audience, model in conn.execute(
            "SELECT id, source_id, status, checksum, chunk_count, url, title, doc_type, language, audience, "
            "embedding_model FROM documents WHERE site = %s", (site,)):
        doc = SourceDocument(site=site, source_id=sid, url=url or "", title=title or "", html="",
                             doc_type=doc_type or "", language=language, audience=audience)
        result[sid] = Stored(sid, status, checksum, count, doc, model, tuple(chunks.get(doc_id, ())))
    return result


def is_torn(settings: Settings, embedder: Embedder, row: Stored) -> bool:
    """True when the row's chunks are not exactly the version its checksum describes."""
    ordinals = [c[0] for c in row.chunks]
    if len(set(ordinals)) != len(ordinals) or len(row.chunks) != row.chunk_count:
        return True
    if row.status not in LIVE:
        return bool(row.chunks)
    if row.model and row.model != embedder.model_id:
        return True
    chunks = [Chunk(ordinal=o, text="", embed_text="", heading_path=p, anchor=a, token_count=0, content_hash=h)
              for o, h, a, p in row.chunks]
    return checksum(settings, embedder, row.doc, chunks) != row.checksum


def torn_documents(conn: psycopg.Connection[Any], settings: Settings, embedder: Embedder, site: str) -> list[str]:
    """Documents whose stored chunks do not add up to their own row: never acceptable, even mid-fault."""
    with conn.transaction():  # one snapshot: rows and chunks as one committed state
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        rows = stored(conn, site)
    return sorted(sid for sid, row in rows.items() if is_torn(settings, embedder, row))


def compare(conn: psycopg.Connection[Any], settings: Settings, embedder: Embedder, site: str) -> Report:
    """The index against the CMS, now. Call it once the faults are cleared and the backlog is worked off."""
    truth = expected(settings, embedder, site)
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        rows = stored(conn, site)
    report = Report(public=len(truth))
    for sid, row in rows.items():
        if is_torn(settings, embedder, row):
            report.duplicated.append(sid)
        elif sid not in truth:
            if row.status in LIVE:
                report.leaked.append(sid)
        elif row.status not in LIVE:
            report.lost.append(sid)
        elif row.checksum != truth[sid][0] or [c[1] for c in row.chunks] != truth[sid][1]:
            report.stale.append(sid)
        else:
            report.current += 1
    report.lost += sorted(set(truth) - set(rows))
    return report
