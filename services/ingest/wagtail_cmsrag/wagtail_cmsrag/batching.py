"""Collecting a transaction's page changes and handing them to `delivery` once it has committed.

A `Batch` is registered with `transaction.on_commit`, so it shares the fate of the changes it holds: a rollback
(also of a savepoint) drops it, a commit sends it. Changes recorded at the same savepoint level of the same
transaction join the batch already registered there; this is what turns the storm of signals of a subtree
deletion into one `deleted` event. Outside a transaction (autocommit) every change is sent at once.

Finding the registered batch reads `connection.run_on_commit`, Django's own list of pending callbacks (stable
since Django 1.9). It is the only record of which callbacks a savepoint rollback has discarded, so a batch found
there is certain to be sent; if that list ever changes shape, each change simply gets a batch of its own.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction

from .events import Change, coalesce

logger = logging.getLogger("wagtail_cmsrag")


class Batch:
    """The changes recorded at one savepoint level of one transaction; called by Django after the commit."""

    def __init__(self) -> None:
        self.changes: list[Change] = []

    def removes(self, page_id: int) -> bool:
        """Whether a deletion recorded here already covers `page_id` (as its root or as a descendant)."""
        return any(c.event == "deleted" and (c.page_id == page_id or page_id in c.removed) for c in self.changes)

    def __call__(self) -> None:
        from .delivery import deliver

        try:
            deliver(coalesce(self.changes))
        except Exception:  # a webhook must never break an editor's action
            logger.exception("cmsrag_batch_failed changes=%r", self.changes)


def current(using: str) -> Batch | None:
    """The batch registered at the current savepoint level of the current transaction, if any."""
    connection = transaction.get_connection(using)
    if not connection.in_atomic_block:
        return None
    here = _level(connection.savepoint_ids)
    try:
        for sids, callback, *_ in reversed(connection.run_on_commit):
            if isinstance(callback, Batch) and _level(sids) == here:
                return callback
    except (AttributeError, TypeError, ValueError):
        pass
    return None


def record(change: Change, using: str) -> None:
    """Add `change` to the current transaction's batch (registering one if needed)."""
    batch = current(using)
    if batch is None:
        batch = Batch()
        batch.changes.append(change)
        transaction.on_commit(batch, using=using, robust=True)  # runs at once outside a transaction
    else:
        batch.changes.append(change)


def _level(savepoint_ids: Any) -> frozenset[str]:
    # `atomic(savepoint=False)` blocks appear as None: same fate as their enclosing level.
    return frozenset(s for s in savepoint_ids if s is not None)
