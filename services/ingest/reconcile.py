"""Reconcile and backfill: compare a CMS's listing with the index and queue what differs.

`plan` is a pure function (table-tested): new documents, documents changed in the CMS since they were indexed,
and documents the index holds that the CMS no longer lists. Backfill queues new + changed (everything with
`force`), so an interrupted backfill resumes where it stopped; reconcile also queues the gone ones — the
worker fetches each and removes it only if the CMS confirms it is not public — and re-sends requests that sat
in `pending` too long (a publish that failed after being recorded: the outbox relay).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg

from shared.models import DocRef, ListedDocument


@dataclass
class Plan:
    listed: int = 0
    new: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    unchanged: int = 0

    @property
    def drift(self) -> int:
        return len(self.new) + len(self.changed) + len(self.gone)


def plan(listed: Iterable[ListedDocument], indexed: dict[str, datetime | None], *, force: bool = False) -> Plan:
    """`indexed` maps source ids the index holds (indexed or empty) to the CMS modified time it stored."""
    p = Plan()
    seen = set()
    for doc in listed:
        p.listed += 1
        seen.add(doc.source_id)
        if doc.source_id not in indexed:
            p.new.append(doc.source_id)
            continue
        stored = indexed[doc.source_id]
        if force or doc.modified_at is None or stored is None or doc.modified_at > stored:
            p.changed.append(doc.source_id)
        else:
            p.unchanged += 1
    p.gone = sorted(set(indexed) - seen)
    return p


def indexed_documents(conn: psycopg.Connection[Any], site: str) -> dict[str, datetime | None]:
    rows = conn.execute("SELECT source_id, modified_at FROM documents WHERE site = %s AND status <> 'removed'",
                        (site,)).fetchall()
    return {r[0]: r[1] for r in rows}


def stale_pending(conn: psycopg.Connection[Any], site: str, older_than: timedelta) -> list[tuple[DocRef, str]]:
    """Requests recorded but not done for a long time: their message was lost (or is stuck); re-send them."""
    rows = conn.execute("SELECT source_id, event FROM pending WHERE site = %s AND last_requested < now() - %s",
                        (site, older_than)).fetchall()
    return [(DocRef(site, r[0]), r[1]) for r in rows]


def prune_deliveries(conn: psycopg.Connection[Any], keep: timedelta = timedelta(days=7)) -> int:
    """Forget webhook ids older than any sender's retry horizon (the plugins give up after a day)."""
    cur = conn.execute("DELETE FROM webhook_deliveries WHERE received_at < now() - %s", (keep,))
    return cur.rowcount
