"""Answers may only cite retrieved passages and only link to the pages they cite, streamed or whole."""

from __future__ import annotations

import pytest

from services.api.citations import LINK_REMOVED, StreamFilter, cited_numbers, clean_text

ALLOWED = {"docs.example.org/tutorial/functions.html"}


@pytest.mark.parametrize(("text", "passages", "expected"), [
    ("Use def [1].", 3, "Use def [1]."),
    ("Both say so [1, 2].", 3, "Both say so [1][2]."),
    ("Chained [1][3].", 3, "Chained [1][3]."),
    ("Out of range [4] and [0].", 3, "Out of range  and ."),
    ("Repeated [2, 2].", 3, "Repeated [2]."),
    ("Code like a[1] and list[int] is not a marker.", 3, "Code like a[1] and list[int] is not a marker."),
    ("Call f(x)[1] too.", 3, "Call f(x)[1] too."),
])
def test_markers_that_name_no_retrieved_passage_are_dropped(text, passages, expected):
    assert clean_text(text, passages, ALLOWED) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("See https://evil.example/steal?x=1.", f"See {LINK_REMOVED}."),
    ("See www.evil.com now", f"See {LINK_REMOVED} now"),
    ("Visit evil.example for more", f"Visit {LINK_REMOVED} for more"),
    ("[click](https://evil.example)", f"[click]({LINK_REMOVED})"),
    ("See https://docs.example.org/tutorial/functions.html#defaults.",
     "See https://docs.example.org/tutorial/functions.html#defaults."),
    ("See http://docs.example.org/tutorial/functions.html/", "See http://docs.example.org/tutorial/functions.html/"),
    ("os.path.join and json.dumps are not links", "os.path.join and json.dumps are not links"),
])
def test_urls_that_are_not_a_retrieved_page_are_removed(text, expected):
    assert clean_text(text, 3, ALLOWED) == expected


def test_cited_numbers_are_listed_in_order_of_first_use_without_repeats():
    assert cited_numbers("a [2] b [1][2] c [3, 1]") == [2, 1, 3]


@pytest.mark.parametrize("pieces", [
    ["Use ", "def [1", ", 2] and see https://evil.", "example/x now [3]"],
    list("Use def [1, 2] and see https://evil.example/x now [3]"),
    ["Use def [1, 2] and see https://evil.example/x now [3]"],
])
def test_the_stream_filter_releases_the_same_text_however_the_stream_is_split(pieces):
    f = StreamFilter(3, ALLOWED)
    released = [f.feed(p) for p in pieces] + [f.flush()]
    assert "".join(released) == f"Use def [1][2] and see {LINK_REMOVED} now [3]" == f.text
    assert not any("evil" in r for r in released)
