"""The relevance floor: semantic closeness, or every query word present and loosely close."""

from __future__ import annotations

import pytest

from services.api.search import Hit, is_relevant


def hit(similarity, all_terms=False, text_rank=None):
    return Hit(1, "s", "d", "T", "u", None, [], "text", "h", similarity, 1, text_rank, 0.1, all_terms)


@pytest.mark.parametrize(("h", "expected"), [
    (hit(0.50), True),
    (hit(0.45), True),
    (hit(0.44), False),
    (hit(0.44, text_rank=1), False),  # sharing some words is not evidence: nearly every passage does
    (hit(0.30, all_terms=True, text_rank=1), True),
    (hit(0.28, all_terms=True, text_rank=1), False),
])
def test_passages_below_the_floor_count_only_when_they_hold_every_query_word(h, expected):
    assert is_relevant(h, 0.45) is expected
