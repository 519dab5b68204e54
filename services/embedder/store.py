"""store: write a document's chunks, or remove them, so that the index only ever moves forward.

Each write is one transaction under a per-document advisory lock:
- a document's chunks are replaced whole (never a mix of two versions);
- an older observation never overwrites a newer one: the fetch that began later (database clock) wins, and a
  version whose CMS modified time is older than the stored one is refused;
- an unchanged checksum skips the write entirely;
- removal leaves a tombstone row (status `removed`, no chunks) so that a slow, older fetch cannot bring a
  deleted or unpublished document back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import psycopg

from shared import metrics
from shared.models import Chunk, SourceDocument

TS_CONFIGS = {"en": "english", "de": "german", "fr": "french", "es": "spanish", "it": "italian",
              "nl": "dutch", "pt": "portuguese", "sv": "swedish", "da": "danish", "fi": "finnish",
              "no": "norwegian", "nb": "norwegian", "ru": "russian", "tr": "turkish", "hu": "hungarian"}
COPY_SQL = ("COPY chunks (document_id, ordinal, text, token_count, title, heading_path, headings, anchor, "
            "content_hash, ts_config, embedding) FROM STDIN")


@dataclass(frozen=True)
class StoredState:
    """What the index holds for a document, read before deciding whether to do any work."""

    id: int
    status: str
    modified_at: datetime | None
    checksum: str | None
    fetched_at: datetime
    embedding_model: str | None


def ts_config(language: str | None) -> str:
    """Postgres text-search configuration for a language tag (`en-GB` → english); `simple` when unknown."""
    if not language:
        return "english"
    return TS_CONFIGS.get(language.lower().replace("_", "-").split("-")[0], "simple")


def _lock(conn: psycopg.Connection[Any], site: str, source_id: str) -> None:
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"{site}\x1f{source_id}",))


def current_state(conn: psycopg.Connection[Any], site: str, source_id: str, *,
                  for_update: bool = False) -> StoredState | None:
    row = conn.execute(
        "SELECT id, status, modified_at, checksum, fetched_at, embedding_model FROM documents "
        "WHERE site = %s AND source_id = %s" + (" FOR UPDATE" if for_update else ""), (site, source_id)).fetchone()
    return StoredState(*row) if row else None


def is_stale(state: StoredState | None, *, fetched_at: datetime, modified_at: datetime | None) -> bool:
    """True when what we hold was observed later than `fetched_at`, or is a newer CMS version."""
    if state is None:
        return False
    if fetched_at < state.fetched_at:
        return True
    return bool(state.status != "removed" and modified_at and state.modified_at and modified_at < state.modified_at)


def upsert_document(conn: psycopg.Connection[Any], doc: SourceDocument, chunks: list[Chunk], *, checksum: str,
                    model_id: str, fetched_at: datetime) -> str:
    """Replace the document's chunks in one transaction. Returns indexed | unchanged | stale | empty."""
    with conn.transaction():
        _lock(conn, doc.site, doc.source_id)
        state = current_state(conn, doc.site, doc.source_id, for_update=True)
        if is_stale(state, fetched_at=fetched_at, modified_at=doc.modified_at):
            return "stale"
        status = "indexed" if chunks else "empty"
        if state and state.status == status and state.checksum == checksum and state.embedding_model == model_id:
            _observed(conn, state.id, fetched_at, doc.modified_at)
            return "unchanged"
        row = conn.execute(
            """INSERT INTO documents (site, source_id, url, title, doc_type, status, language, audience, modified_at,
                                      checksum, fetched_at, indexed_at, embedding_model, chunk_count, removed_reason)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now(), %s, %s, NULL)
               ON CONFLICT (site, source_id) DO UPDATE SET
                 url = EXCLUDED.url, title = EXCLUDED.title, doc_type = EXCLUDED.doc_type, status = EXCLUDED.status,
                 language = EXCLUDED.language, audience = EXCLUDED.audience, modified_at = EXCLUDED.modified_at,
                 checksum = EXCLUDED.checksum, fetched_at = EXCLUDED.fetched_at, indexed_at = now(),
                 embedding_model = EXCLUDED.embedding_model, chunk_count = EXCLUDED.chunk_count, removed_reason = NULL
               RETURNING id""",
            (doc.site, doc.source_id, doc.url, doc.title, doc.doc_type, status, doc.language, doc.audience,
             doc.modified_at, checksum, fetched_at, model_id, len(chunks)),
        ).fetchone()
        assert row is not None
        doc_id = row[0]
        removed = conn.execute("DELETE FROM chunks WHERE document_id = %s", (doc_id,)).rowcount
        if chunks:
            _copy_chunks(conn, doc_id, doc, chunks)
    metrics.chunks_replaced(doc.site, indexed=len(chunks), removed=removed)  # once committed
    return status


def _copy_chunks(conn: psycopg.Connection[Any], doc_id: int, doc: SourceDocument, chunks: list[Chunk]) -> None:
    config = ts_config(doc.language)
    with conn.cursor() as cur, cur.copy(COPY_SQL) as copy:
        for c in chunks:
            if c.embedding is None:
                raise ValueError(f"chunk {c.ordinal} of {doc.site}/{doc.source_id} has no embedding")
            copy.write_row((doc_id, c.ordinal, c.text, c.token_count, doc.title, list(c.heading_path),
                            " ".join(c.heading_path), c.anchor, c.content_hash, config,
                            np.asarray(c.embedding, dtype=np.float32)))


def touch(conn: psycopg.Connection[Any], site: str, source_id: str, *, checksum: str, fetched_at: datetime,
          modified_at: datetime | None) -> str:
    """Record an observation that found nothing new. Returns unchanged | stale | changed (do the full write)."""
    with conn.transaction():
        _lock(conn, site, source_id)
        state = current_state(conn, site, source_id, for_update=True)
        if is_stale(state, fetched_at=fetched_at, modified_at=modified_at):
            return "stale"
        if state is None or state.checksum != checksum or state.status == "removed":
            return "changed"
        _observed(conn, state.id, fetched_at, modified_at)
        return "unchanged"


def _observed(conn: psycopg.Connection[Any], doc_id: int, fetched_at: datetime, modified_at: datetime | None) -> None:
    """Record a fetch that found the same content. The CMS's modified time moves on too (a save that changed
    nothing still bumps it): reconcile compares it with the CMS's listing, and would see drift forever."""
    conn.execute("UPDATE documents SET fetched_at = %s, modified_at = GREATEST(modified_at, %s) WHERE id = %s",
                 (fetched_at, modified_at, doc_id))


def remove_document(conn: psycopg.Connection[Any], site: str, source_id: str, *, reason: str,
                    fetched_at: datetime) -> str:
    """Drop the document's chunks and leave a tombstone. Returns removed | absent | stale."""
    with conn.transaction():
        _lock(conn, site, source_id)
        state = current_state(conn, site, source_id, for_update=True)
        if state is not None and fetched_at < state.fetched_at:
            return "stale"
        if state is None:
            conn.execute(
                "INSERT INTO documents (site, source_id, status, fetched_at, removed_reason) "
                "VALUES (%s, %s, 'removed', %s, %s)", (site, source_id, fetched_at, reason))
            return "absent"
        removed = conn.execute("DELETE FROM chunks WHERE document_id = %s", (state.id,)).rowcount
        conn.execute(
            "UPDATE documents SET status = 'removed', chunk_count = 0, checksum = NULL, fetched_at = %s, "
            "removed_reason = %s, indexed_at = now() WHERE id = %s", (fetched_at, reason, state.id))
    metrics.chunks_replaced(site, indexed=0, removed=removed)  # once committed
    return "absent" if state.status == "removed" else "removed"
