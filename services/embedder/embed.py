"""embed: give every chunk a vector, calling the model only for text it has never embedded.

Vectors are cached by (model id, content hash) in `embedding_cache`, so a re-index after a one-paragraph
edit embeds only the chunks whose text changed, identical boilerplate across pages is embedded once, and a
page that is unpublished and republished costs nothing. Chunks of many documents are embedded together
during backfill so the model sees full batches.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg

from shared import metrics
from shared.embedders import Embedder
from shared.errors import PermanentError
from shared.models import Chunk


@dataclass
class EmbedStats:
    """What one call cost: texts sent to the model, and chunks served from the cache."""

    embedded: int = 0
    reused: int = 0
    new_hashes: frozenset[str] = frozenset()

    def __iadd__(self, other: EmbedStats) -> EmbedStats:
        self.embedded += other.embedded
        self.reused += other.reused
        self.new_hashes |= other.new_hashes
        return self


def as_array(v: Any) -> np.ndarray:
    """float32 array from what a model or pgvector returns (an untyped `vector` column reads as `Vector`)."""
    return np.asarray(v.to_numpy() if hasattr(v, "to_numpy") else v, dtype=np.float32)


def cached_vectors(conn: psycopg.Connection[Any], model_id: str, hashes: list[str]) -> dict[str, Any]:
    rows = conn.execute(
        "SELECT content_hash, embedding FROM embedding_cache WHERE model = %s AND content_hash = ANY(%s)",
        (model_id, hashes)).fetchall()
    return {h: v for h, v in rows}


def store_vectors(conn: psycopg.Connection[Any], model_id: str, vectors: dict[str, Any]) -> None:
    if not vectors:
        return
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO embedding_cache (model, content_hash, embedding) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
            [(model_id, h, as_array(v)) for h, v in vectors.items()])


def embed_chunks(conn: psycopg.Connection[Any], embedder: Embedder,
                 chunks: list[Chunk]) -> tuple[list[Chunk], EmbedStats]:
    """Return the chunks with embeddings set, and how many were embedded vs reused."""
    if not chunks:
        return [], EmbedStats()
    model_id = embedder.model_id
    texts = {c.content_hash: c.embed_text for c in chunks}
    found = cached_vectors(conn, model_id, list(texts))
    missing = [h for h in texts if h not in found]
    if missing:
        vectors = embedder.embed([texts[h] for h in missing])
        if len(vectors) != len(missing):
            raise PermanentError(f"embedder returned {len(vectors)} vectors for {len(missing)} texts", stage="embed")
        fresh = dict(zip(missing, vectors, strict=True))
        store_vectors(conn, model_id, fresh)
        found.update(fresh)
    stats = EmbedStats(embedded=len(missing), reused=len(chunks) - len(missing), new_hashes=frozenset(missing))
    tokens = {c.content_hash: c.token_count for c in chunks}
    metrics.embedded(model_id, embedded=stats.embedded, reused=stats.reused, tokens=sum(tokens[h] for h in missing))
    vectors_by_hash = {h: as_array(v) for h, v in found.items()}
    return [dataclasses.replace(c, embedding=vectors_by_hash[c.content_hash]) for c in chunks], stats
