"""Asking for documents to be (re)indexed: the one producer API that the CLI, the receiver and reconcile use.

The request is written to `pending` first and published second (with a publisher confirm on RabbitMQ), so
"published but not recorded" cannot happen; "recorded but not published" is visible and reconcile re-sends it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from services.embedder import jobs
from services.embedder.actors import BATCH_SIZE, Actors
from shared.db import Database
from shared.models import DocRef


class IndexQueue:
    def __init__(self, db: Database, actors: Actors) -> None:
        self.db = db
        self.actors = actors

    def request(self, ref: DocRef, event: str = "update", delivery_id: str | None = None) -> str:
        """Queue one document; returns the message id."""
        with self.db.connection() as conn:
            jobs.requested(conn, [ref], event, delivery_id)
        return self.publish(ref, event, delivery_id)

    def publish(self, ref: DocRef, event: str = "update", delivery_id: str | None = None) -> str:
        """Send only (the caller has recorded the request in `pending`); raises if the broker did not confirm."""
        msg = self.actors.sync_document.send(ref.site, ref.source_id, event, delivery_id)
        return str(msg.message_id)

    def request_many(self, site: str, source_ids: Iterable[str], batch_size: int = BATCH_SIZE) -> Iterator[int]:
        """Queue documents in batches (backfill); yields how many were queued after each batch."""
        batch: list[str] = []
        for sid in source_ids:
            batch.append(sid)
            if len(batch) >= batch_size:
                yield self._send_batch(site, batch)
                batch = []
        if batch:
            yield self._send_batch(site, batch)

    def _send_batch(self, site: str, batch: list[str]) -> int:
        with self.db.connection() as conn:
            jobs.requested(conn, [DocRef(site, s) for s in batch], "update")
        self.actors.sync_batch.send(site, list(batch))
        return len(batch)
