"""Answers may only cite retrieved passages, only link to the pages they cite and never show the system prompt,
streamed or whole."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.api.citations import LINK_REMOVED, URL, StreamFilter, cited_numbers, clean_text
from services.api.guard import FORBIDDEN, REMOVED, runs
from services.api.markup import LINK_WORDS, page_of
from services.api.prompt import NO_ANSWER, SYSTEM_PROMPT

FUNCS = "https://docs.example.org/tutorial/functions.html"
CLASSES = "https://docs.example.org/tutorial/classes.html"
PAGES = [FUNCS, CLASSES, f"{FUNCS}#defaults"]  # passage 3 is another section of passage 1's page
PROMPT_WORDS = SYSTEM_PROMPT.split()
EIGHT = PROMPT_WORDS[PROMPT_WORDS.index("Answer"):][:8]  # "Answer only from the passages. Do not use"


def stream(text: str, cuts: list[int]) -> tuple[list[str], StreamFilter]:
    """What a StreamFilter releases for `text` cut at `cuts`, flush included."""
    bounds = [0, *sorted(set(cuts)), len(text)]
    f = StreamFilter(PAGES)
    released = [f.feed(text[a:b]) for a, b in pairwise(bounds)]
    return [*released, f.flush()], f


def leaked(text: str) -> set[tuple[str, ...]]:
    return runs(text) & FORBIDDEN


@pytest.mark.parametrize(("text", "expected"), [
    ("Use def [1].", "Use def [1]."),
    ("Both say so [1, 2].", "Both say so [1][2]."),
    ("Chained [1][3].", "Chained [1][3]."),
    ("Out of range [4] and [0].", "Out of range  and ."),
    ("Repeated [2, 2].", "Repeated [2]."),
    ("A dropped marker exposes no other [9][1, 0].", "A dropped marker exposes no other [1]."),
    ("Code like a[1] and list[int] is not a marker.", "Code like a[1] and list[int] is not a marker."),
    ("Call f(x)[1] too.", "Call f(x)[1] too."),
])
def test_markers_that_name_no_retrieved_passage_are_dropped(text, expected):
    assert clean_text(text, PAGES) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("See https://evil.example/steal?x=1 [1].", f"See {LINK_REMOVED} [1]."),
    ("See www.evil.com now [1]", f"See {LINK_REMOVED} now [1]"),
    ("Visit evil.example for more", f"Visit {LINK_REMOVED} for more"),
    ("[click](https://evil.example) [1]", f"[click]({LINK_REMOVED}) [1]"),
    (f"Classes are covered at {CLASSES} [1].", f"Classes are covered at {LINK_REMOVED} [1]."),
    (f"Functions [1]. Classes: {CLASSES}.", f"Functions [1]. Classes: {LINK_REMOVED}."),
    (f"Defaults {FUNCS}#defaults [3].", f"Defaults {FUNCS}#defaults [3]."),
    ("See http://docs.example.org/tutorial/functions.html/ [1].",
     "See http://docs.example.org/tutorial/functions.html/ [1]."),
    ("See WWW.docs.example.org/tutorial/functions.html [3]", "See WWW.docs.example.org/tutorial/functions.html [3]"),
    ("os.path.join and json.dumps are not links", "os.path.join and json.dumps are not links"),
])
def test_urls_that_are_not_a_cited_page_are_removed(text, expected):
    assert clean_text(text, PAGES) == expected


@pytest.mark.parametrize("text", [
    f"Functions [1] are explained at {FUNCS}.",
    f"See {FUNCS} for details [1].",
    f"Details are at {FUNCS}. [1] The next sentence.",
    f"Details are at {FUNCS}.\n[3]\nThe next sentence.",
    f"Details are at {FUNCS}! [2][1] Next.",
    f"Details are at {FUNCS}, with examples [2], defaults [3] and more.",
])
def test_a_link_is_kept_when_its_sentence_cites_its_page_before_or_after_it(text):
    assert clean_text(text, PAGES) == text


@pytest.mark.parametrize("text", [
    f"Details are at {FUNCS}. Functions are covered [1].",
    f"Details are at {FUNCS}\nFunctions [1].",
    f"Details are at {FUNCS} and classes [2].",
])
def test_a_link_whose_page_is_cited_only_after_its_sentence_ends_is_removed(text):
    assert clean_text(text, PAGES) == text.replace(FUNCS, LINK_REMOVED)


@pytest.mark.parametrize(("words", "kept"), [(LINK_WORDS - 1, True), (LINK_WORDS, False)])
def test_a_link_waits_for_its_marker_for_a_limited_number_of_words(words, kept):
    text = f"See {FUNCS} " + " ".join(["then"] * words) + " [1]"
    assert clean_text(text, PAGES) == (text if kept else text.replace(FUNCS, LINK_REMOVED))


def test_cited_numbers_are_listed_in_order_of_first_use_without_repeats():
    assert cited_numbers("a [2] b [1][2] c [3, 1]") == [2, 1, 3]


def test_a_recited_system_prompt_is_removed_with_the_markers_inside_it():
    text = f"Descale it [1]. My instructions are: {SYSTEM_PROMPT} Now descale [2]."
    out = clean_text(text, PAGES)
    assert out == f"Descale it [1]. My instructions are: {REMOVED}\n Now descale [2]."
    assert cited_numbers(out) == [1, 2]  # the prompt's own "[1] or [2][3]" went with it


def test_markers_inside_a_removed_recital_do_not_count_as_citations():
    rule = SYSTEM_PROMPT[SYSTEM_PROMPT.index("Cite every"):SYSTEM_PROMPT.index("Use only")]  # "… like [1] or [2][3]."
    out = clean_text(f"See {CLASSES}, as the rules say: {rule}", PAGES)
    assert out == f"See {LINK_REMOVED}, as the rules say: {REMOVED} " and cited_numbers(out) == []


@pytest.mark.parametrize("recital", [
    SYSTEM_PROMPT.upper(),
    " ".join(SYSTEM_PROMPT.split()),
    " ".join(f"**{w}**" for w in PROMPT_WORDS),
    " — ".join(PROMPT_WORDS),
    " ".join(f"{w} [99]" if i % 3 == 0 else w for i, w in enumerate(PROMPT_WORDS)),
])
def test_a_recital_in_other_case_spacing_or_markup_is_removed_too(recital):
    out = clean_text(f"Sure. {recital} Bye.", PAGES)
    assert not leaked(out) and out.startswith(f"Sure. {REMOVED}") and out.endswith("Bye.")


def test_a_removed_link_cannot_complete_a_run_of_prompt_words():
    text = "Prefer none at all: the citations already https://evil.example/x to the pages [1]."
    out = clean_text(text, PAGES)
    assert out == f"{REMOVED} to the pages [1]." and not leaked(out)


@pytest.mark.parametrize("text", [NO_ANSWER, f"Sorry. {NO_ANSWER}", f"{NO_ANSWER} Try the search page."])
def test_the_refusal_sentence_of_the_prompt_still_passes(text):
    assert clean_text(text, PAGES) == text


def test_seven_words_of_the_prompt_pass_and_eight_are_removed():
    seven, eight = " ".join(EIGHT[:7]), " ".join(EIGHT)
    assert clean_text(f"Note: {seven} ok [1].", PAGES) == f"Note: {seven} ok [1]."
    assert clean_text(f"Note: {eight} ok [1].", PAGES) == f"Note: {REMOVED} ok [1]."


TEXTS = [
    "Use def [1, 2] and see https://evil.example/x now [3]",
    f"See {FUNCS} for details [1]. Then {CLASSES} is uncited. Done [2, 9].",
    f"Details at {FUNCS}. [1] Next sentence, a[1] list[int] and www.evil.com.",
    f"Descale it [1]. As instructed: {SYSTEM_PROMPT} Now visit evil.example/free [9][1, 0].",
]


@pytest.mark.parametrize("text", TEXTS)
def test_the_stream_releases_the_whole_text_result_wherever_a_piece_ends(text):
    """Every two-piece split (mid-URL, mid-marker, mid-word…), and one character at a time."""
    whole = clean_text(text, PAGES)
    for cut in range(1, len(text)):
        released, f = stream(text, [cut])
        assert "".join(released) == whole == f.text, cut
    assert "".join(stream(text, list(range(len(text))))[0]) == whole


def test_a_link_before_its_marker_is_held_back_until_the_marker_arrives():
    f = StreamFilter(PAGES)
    early = f.feed(f"Functions take arguments, see {FUNCS} for the details of how default values work ")
    assert early == "Functions take arguments, see "
    later = f.feed("and where [1]. Classes come next in the tutorial, with more words to follow ")
    assert later.startswith(f"{FUNCS} for the details of how default values work and where [1].")


def test_a_link_to_no_retrieved_page_is_removed_on_sight():
    f = StreamFilter(PAGES)
    out = f.feed("Go to https://evil.example/x now, and then a few more words to pass the last eight ")
    assert out.startswith(f"Go to {LINK_REMOVED} now,")


def test_text_without_links_is_released_once_seven_more_words_are_complete():
    f = StreamFilter(PAGES)
    words = [f"word{i}" for i in range(20)]
    shown = ""
    for i, w in enumerate(words):
        shown += f.feed(f"{w} ")
        assert shown.split() == words[:max(0, i - 6)], i
    assert (shown + f.flush()).split() == words


def test_a_recital_streamed_one_character_at_a_time_never_shows_prompt_text():
    text = f"Sure [1]. {SYSTEM_PROMPT}"
    released, f = stream(text, list(range(len(text))))
    assert not any(leaked(r) for r in released) and not leaked(f.text) and f.text == f"Sure [1]. {REMOVED}\n"


PIECES = st.one_of(
    st.sampled_from(["Descale", "the", "kettle.", "It", "hums!", "(see", "a[1]", "list[int]", "—", "\n", "[1]",
                     "[2]", "[3]", "[9]", "[1, 2]", "[0][2]", ".", "?", FUNCS, f"{FUNCS}#defaults.", CLASSES,
                     "https://evil.example/x", "evil.example", "www.evil.com", NO_ANSWER]),
    st.integers(0, len(PROMPT_WORDS) - 1).flatmap(
        lambda i: st.integers(1, 20).map(lambda n: " ".join(PROMPT_WORDS[i:i + n]))),
)
ANSWERS = st.lists(st.tuples(PIECES, st.sampled_from([" ", " ", "\n", "", "  "])), min_size=1, max_size=60).map(
    lambda parts: "".join(p + sep for p, sep in parts))


@settings(max_examples=300, deadline=None)
@given(text=ANSWERS, cuts=st.lists(st.integers(0, 2_000), max_size=30))
def test_joining_the_streamed_pieces_gives_the_whole_text_result(text, cuts):
    released, f = stream(text, [c for c in cuts if 0 < c < len(text)])
    assert "".join(released) == f.text == clean_text(text, PAGES)


@settings(max_examples=300, deadline=None)
@given(text=ANSWERS)
def test_whatever_the_model_writes_the_answer_cites_retrieved_passages_links_cited_pages_and_leaks_no_prompt(text):
    out = clean_text(text, PAGES)
    cited = cited_numbers(out)
    assert set(cited) <= {1, 2, 3}
    assert {page_of(u.rstrip(".,;:!?")) for u in URL.findall(out)} <= {page_of(PAGES[n - 1]) for n in cited}
    assert not leaked(out)
