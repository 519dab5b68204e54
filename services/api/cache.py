"""The answer cache: a repeated question is answered from Postgres, never from content that has changed.

The key is the normalised question + filters + model + the content hashes of the passages retrieved for it,
so retrieval runs on every request (cheap: one query embedding and one SQL query) and an edit that changes
what is retrieved changes the key. On top of that, the `answer_cache` rows list the chunk ids they were built
from, and a trigger on `chunks` deletes every answer built from a chunk that is deleted or updated (an edit
replaces a document's chunks, an unpublish removes them): a cached answer cannot outlive, or leak, what it
quotes. `put` locks those chunks (`FOR KEY SHARE`) so a concurrent re-index waits for the insert and then
purges it, and `get` re-checks the chunks exist, so no interleaving serves a stale answer.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import unicodedata
from typing import Any

from psycopg.types.json import Jsonb

from services.api.filters import Filters
from services.api.search import Hit
from shared.db import Database
from shared.logs import get_logger

log = get_logger(__name__)
PROMPT_VERSION = 2  # bump when the prompt or answer shape changes: old entries stop matching
PRUNE_CHANCE = 0.01


def normalise_question(question: str) -> str:
    """Case, width, spacing and trailing punctuation do not make a different question."""
    text = unicodedata.normalize("NFKC", question).casefold()
    return re.sub(r"\s+", " ", text).strip().rstrip("?!.。？！ ")


def cache_key(question: str, filters: Filters, model: str, hits: list[Hit]) -> str:
    material = json.dumps({"v": PROMPT_VERSION, "q": normalise_question(question), "f": filters.as_dict(),
                           "m": model, "p": [h.content_hash for h in hits]}, sort_keys=True)
    return hashlib.sha256(material.encode()).hexdigest()


class AnswerCache:
    def __init__(self, db: Database, ttl_seconds: int) -> None:
        self.db, self.ttl = db, ttl_seconds

    @property
    def enabled(self) -> bool:
        return self.ttl > 0

    def get(self, key: str) -> dict[str, Any] | None:
        if not self.enabled:
            return None
        with self.db.connection() as conn:
            row = conn.execute(
                """UPDATE answer_cache a SET hits = hits + 1
                   WHERE key = %s AND created_at > now() - make_interval(secs => %s)
                     AND cardinality(chunk_ids) = (SELECT count(*) FROM chunks c WHERE c.id = ANY(a.chunk_ids))
                   RETURNING response""", (key, self.ttl)).fetchone()
        return dict(row[0]) if row else None

    def put(self, key: str, question: str, response: dict[str, Any], chunk_ids: list[int]) -> bool:
        """Store an answer unless one of its chunks is already gone; True when stored."""
        if not self.enabled or not chunk_ids:
            return False
        with self.db.connection() as conn, conn.transaction():
            alive = conn.execute("SELECT id FROM chunks WHERE id = ANY(%s) FOR KEY SHARE",
                                 (chunk_ids,)).fetchall()
            if len(alive) != len(set(chunk_ids)):
                log.info("answer_not_cached", reason="passage changed while answering")
                return False
            conn.execute(
                """INSERT INTO answer_cache (key, question, response, chunk_ids) VALUES (%s, %s, %s, %s)
                   ON CONFLICT (key) DO UPDATE SET response = EXCLUDED.response, chunk_ids = EXCLUDED.chunk_ids,
                   created_at = now()""", (key, question[:2000], Jsonb(response), chunk_ids))
            if random.random() < PRUNE_CHANCE:
                self.prune(conn)
        return True

    def prune(self, conn: Any) -> int:
        cur = conn.execute("DELETE FROM answer_cache WHERE created_at < now() - make_interval(secs => %s)",
                           (self.ttl,))
        return int(cur.rowcount or 0)
