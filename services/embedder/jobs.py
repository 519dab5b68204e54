"""Bookkeeping of requested and failed work, in Postgres next to the index it describes.

`pending` holds every document asked for and not yet done (written *before* the message is published, so a
message lost in the broker leaves a trace that reconcile and `cmsrag status` can see). `failures` holds work
given up on, one open row per document, for `cmsrag failures` / `cmsrag retry`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from shared.errors import PipelineError
from shared.models import DocRef


@dataclass(frozen=True)
class Failure:
    id: int
    site: str
    source_id: str
    stage: str
    reason: str
    retryable: bool
    attempts: int
    failed_at: datetime


def requested(conn: psycopg.Connection[Any], refs: Iterable[DocRef], event: str,
              delivery_id: str | None = None) -> None:
    """Record that these documents were asked for (again). Coalesces: one row per document."""
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO pending (site, source_id, event, delivery_id) VALUES (%s, %s, %s, %s)
               ON CONFLICT (site, source_id) DO UPDATE SET last_requested = clock_timestamp(),
                 requests = pending.requests + 1, event = EXCLUDED.event, delivery_id = EXCLUDED.delivery_id""",
            [(r.site, r.source_id, event, delivery_id) for r in refs])


@contextmanager
def one_run_at_a_time(conn: psycopg.Connection[Any], ref: DocRef) -> Iterator[None]:
    """Hold a per-document lock (a session advisory lock on `conn`) while the block runs.

    Messages for one document can be taken by several workers at once (a burst of hooks for one save, a
    redelivery): without this each would fetch and embed the same content. The second waits here, then finds
    the pending request cleared by the first and stops. A session lock, not a transaction's: the run takes
    seconds and must not hold a transaction open. Its key differs from the store's per-write lock (seed 1 vs 0),
    which other connections of the same run take. A worker that dies loses its session, and with it the lock.
    """
    key = f"{ref.site}\x1f{ref.source_id}"
    conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 1))", (key,))
    try:
        yield
    finally:
        with contextlib.suppress(psycopg.Error):  # a broken connection has lost the lock already
            conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 1))", (key,))


def is_pending(conn: psycopg.Connection[Any], ref: DocRef) -> bool:
    row = conn.execute("SELECT 1 FROM pending WHERE site = %s AND source_id = %s", (ref.site, ref.source_id))
    return row.fetchone() is not None


def succeeded(conn: psycopg.Connection[Any], ref: DocRef, started: datetime, event: str = "update") -> None:
    """The document is in step as of `started`: clear its pending row (unless asked for again since) and failure.

    Only a delete run clears a pending delete: an update that raced WordPress's `before_delete_post` may have
    seen the post still there."""
    with conn.transaction():
        conn.execute("DELETE FROM pending WHERE site = %s AND source_id = %s AND last_requested <= %s "
                     "AND (event <> 'delete' OR %s = 'delete')", (ref.site, ref.source_id, started, event))
        conn.execute("UPDATE failures SET resolved_at = now() "
                     "WHERE site = %s AND source_id = %s AND resolved_at IS NULL", (ref.site, ref.source_id))


def failed(conn: psycopg.Connection[Any], ref: DocRef, error: BaseException, *, attempts: int, started: datetime,
           message_id: str | None = None) -> None:
    """Give up on a document: one open failure row (attempts accumulate across replays), pending cleared."""
    stage = error.stage if isinstance(error, PipelineError) else "unknown"
    retryable = error.retryable if isinstance(error, PipelineError) else True
    reason = str(error).splitlines()[0][:500] if str(error) else error.__class__.__name__
    with conn.transaction():
        conn.execute(
            """INSERT INTO failures (site, source_id, stage, reason, retryable, attempts, last_error, message_id)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (site, source_id) WHERE resolved_at IS NULL DO UPDATE SET
                 stage = EXCLUDED.stage, reason = EXCLUDED.reason, retryable = EXCLUDED.retryable,
                 attempts = failures.attempts + EXCLUDED.attempts, last_error = EXCLUDED.last_error,
                 message_id = EXCLUDED.message_id, failed_at = now()""",
            (ref.site, ref.source_id, stage, reason, retryable, attempts, f"{error.__class__.__name__}: {error}"[:4000],
             message_id))
        conn.execute("DELETE FROM pending WHERE site = %s AND source_id = %s AND last_requested <= %s",
                     (ref.site, ref.source_id, started))


def open_failures(conn: psycopg.Connection[Any], site: str | None = None, limit: int = 100) -> list[Failure]:
    rows = conn.execute(
        "SELECT id, site, source_id, stage, reason, retryable, attempts, failed_at FROM failures "
        "WHERE resolved_at IS NULL AND (%s::text IS NULL OR site = %s) ORDER BY failed_at DESC LIMIT %s",
        (site, site, limit)).fetchall()
    return [Failure(*r) for r in rows]
