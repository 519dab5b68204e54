"""The reconcile/backfill plan as a table: what is new, changed, gone or unchanged."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.ingest.reconcile import plan
from shared.models import ListedDocument

T1 = datetime(2026, 1, 1, tzinfo=UTC)
T2 = datetime(2026, 2, 1, tzinfo=UTC)


def listed(*pairs: tuple[str, datetime | None]) -> list[ListedDocument]:
    return [ListedDocument(source_id=s, modified_at=m) for s, m in pairs]


@pytest.mark.parametrize(("cms", "index", "force", "new", "changed", "gone", "unchanged"), [
    ([], {}, False, [], [], [], 0),
    ([("a", T1)], {}, False, ["a"], [], [], 0),
    ([("a", T1)], {"a": T1}, False, [], [], [], 1),
    ([("a", T2)], {"a": T1}, False, [], ["a"], [], 0),
    ([("a", T1)], {"a": T2}, False, [], [], [], 1),  # the index is newer (a webhook beat the listing): leave it
    ([("a", None)], {"a": T1}, False, [], ["a"], [], 0),  # no time to compare: let the worker decide
    ([("a", T1)], {"a": None}, False, [], ["a"], [], 0),
    ([("a", T1)], {"a": T1, "b": T1}, False, [], [], ["b"], 1),
    ([("a", T1), ("c", T2)], {"a": T1, "b": T1}, True, ["c"], ["a"], ["b"], 0),
])
def test_the_plan_sorts_every_document_into_one_bucket(cms, index, force, new, changed, gone, unchanged):
    p = plan(listed(*cms), index, force=force)
    assert (p.new, p.changed, p.gone, p.unchanged) == (new, changed, gone, unchanged)
    assert p.listed == len(cms)
    assert p.drift == len(new) + len(changed) + len(gone)
