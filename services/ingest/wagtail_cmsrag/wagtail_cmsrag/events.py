"""What one transaction's page changes become on the wire: pure functions, so the rules are table-tested.

Wagtail sends several signals for one editor action. Deleting a page with live children sends
`page_unpublished` for every live page of the subtree (Wagtail unpublishes before deleting), then `pre_delete`
for every page of it. cmsrag needs one `deleted` event for the subtree's root, `ids` listing every page removed
with it (docs/webhooks.md). `coalesce` turns what a transaction recorded into the events to send; `bodies`
renders one event as one or more JSON bodies under the contract's size limit.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone

MAX_BODY_BYTES = 60_000  # the contract allows 64 KiB; keep a margin
MAX_IDS_PER_BODY = 5000  # cmsrag's receiver takes up to 10,000
MAX_TEXT = 2000  # the receiver's limit for `type`, `modified` and `url`


@dataclass(frozen=True)
class Change:
    """One page change as the signal handlers saw it; `removed` (for `deleted`): the descendants removed with it."""

    event: str  # published | updated | unpublished | deleted
    page_id: int
    type: str | None = None
    url: str | None = None
    modified: str | None = None
    removed: frozenset[int] = frozenset()


def iso_utc(moment: datetime) -> str:
    """`2026-11-23T19:00:00Z`: the form the contract shows for `modified`."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def coalesce(changes: Sequence[Change]) -> list[Change]:
    """The events to send for `changes`, in the order their pages first appeared.

    - a deleted page drops every other change of it, and of each page deleted with it;
    - a deletion inside another deleted subtree is folded into that subtree's root, whose `removed` then lists all;
    - otherwise the last change of a page wins, except that a page published in this transaction and then
      updated is still `published` (it went live here).
    """
    deleted = {c.page_id: c for c in changes if c.event == "deleted"}
    inside = {i for c in deleted.values() for i in c.removed if i != c.page_id}
    latest: dict[int, Change] = {}  # keeps the order in which pages first appeared
    went_live: set[int] = set()
    for change in changes:
        if change.event == "published":
            went_live.add(change.page_id)
        if change.page_id not in latest or latest[change.page_id].event != "deleted":
            latest[change.page_id] = change  # nothing comes after a deletion
    result: list[Change] = []
    for page_id, change in latest.items():
        if page_id in inside:
            continue  # folded into its root's deletion
        if page_id in deleted:
            root = deleted[page_id]
            removed = set(root.removed)
            for other in deleted.values():
                if other.page_id in root.removed:
                    removed |= other.removed | {other.page_id}
            result.append(replace(root, removed=frozenset(removed - {page_id})))
        elif change.event == "updated" and page_id in went_live:
            result.append(replace(change, event="published"))
        else:
            result.append(change)
    return result


def bodies(change: Change, max_bytes: int = MAX_BODY_BYTES) -> list[bytes]:
    """The JSON bodies for `change`: one, or for a very large deleted subtree one per slice of `ids`.

    Every slice repeats the root as `id`, so each body is a complete `deleted` event on its own (deleting the
    root twice is harmless). Ids are strings, as the contract's Wagtail ids are.
    """
    payload: dict[str, object] = {"event": change.event, "id": str(change.page_id)}
    for name in ("type", "modified", "url"):
        value = getattr(change, name)
        if value and len(value) <= MAX_TEXT:
            payload[name] = value
    if not change.removed:
        return [_dump(payload)]
    base = len(_dump({**payload, "ids": []}))
    result: list[bytes] = []
    chunk: list[str] = []
    size = base
    for page_id in sorted(change.removed):
        cost = len(str(page_id)) + 3  # quotes and a comma
        if chunk and (size + cost > max_bytes or len(chunk) == MAX_IDS_PER_BODY):
            result.append(_dump({**payload, "ids": chunk}))
            chunk, size = [], base
        chunk.append(str(page_id))
        size += cost
    result.append(_dump({**payload, "ids": chunk}))
    return result


def _dump(payload: dict[str, object]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()
