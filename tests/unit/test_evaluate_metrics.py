"""The eval metrics as tables of hand-computed values: pages, hit@k, MRR, nDCG, aggregation, answers, questions."""

from __future__ import annotations

import json
import math

import pytest

from services.api.evaluate import (
    AnswerResult,
    aggregate,
    answer_metrics,
    first_relevant_rank,
    hit_at,
    mrr_at,
    ndcg_at,
    parse_questions,
    percentile,
    retrieval_metrics,
    unique_pages,
)
from shared.errors import CmsragError

L2, L3, L4 = math.log2(2), math.log2(3), math.log2(4)


@pytest.mark.parametrize(("passages", "pages"), [
    ([], []),
    (["a", "a", "b", "a", "c", "b"], ["a", "b", "c"]),
    (["c", "b", "c", "a"], ["c", "b", "a"]),
])
def test_passages_collapse_to_pages_at_their_first_rank(passages, pages):
    assert unique_pages(passages) == pages


@pytest.mark.parametrize(("pages", "relevant", "k", "hit", "mrr", "ndcg"), [
    (["r", "x", "y"], {"r"}, 10, 1.0, 1.0, 1.0),
    (["x", "r", "y"], {"r"}, 1, 0.0, 0.0, 0.0),  # relevant at rank 2, outside the first 1
    (["x", "r", "y"], {"r"}, 3, 1.0, 0.5, 1 / L3),
    (["x", "y", "z", "r"], {"r"}, 3, 0.0, 0.0, 0.0),
    (["x", "y", "z", "r"], {"r"}, 5, 1.0, 0.25, 1 / math.log2(5)),
    (["x", "y"], {"r"}, 10, 0.0, 0.0, 0.0),  # nothing relevant retrieved
    ([], {"r"}, 10, 0.0, 0.0, 0.0),
    (["r", "s"], {"r", "s"}, 10, 1.0, 1.0, 1.0),  # both relevant pages, best order
    (["x", "r", "s"], {"r", "s"}, 10, 1.0, 0.5, (1 / L3 + 1 / L4) / (1 / L2 + 1 / L3)),
    (["r", "x"], {"r", "s"}, 10, 1.0, 1.0, 1 / (1 / L2 + 1 / L3)),  # one of two found: ideal counts both
    (["r", "x"], {"r", "s", "t"}, 1, 1.0, 1.0, 1.0),  # ideal DCG is over min(|relevant|, k) = 1 page
])
def test_rank_metrics_read_the_first_k_pages_with_binary_relevance(pages, relevant, k, hit, mrr, ndcg):
    assert hit_at(pages, relevant, k) == hit
    assert mrr_at(pages, relevant, k) == pytest.approx(mrr)
    assert ndcg_at(pages, relevant, k) == pytest.approx(ndcg)


def test_a_page_found_by_several_passages_counts_once():
    pages = unique_pages(["x", "x", "r", "r", "x"])
    assert first_relevant_rank(pages, {"r"}) == 2
    assert retrieval_metrics(pages, {"r"}, 10) == pytest.approx(
        {"hit@1": 0.0, "hit@3": 1.0, "hit@5": 1.0, "mrr@10": 0.5, "ndcg@10": 1 / L3})


def test_metrics_are_averaged_over_all_questions_and_per_kind():
    rows = [("factoid", {"hit@1": 1.0}), ("factoid", {"hit@1": 0.0}), ("howto", {"hit@1": 1.0})]
    assert aggregate(rows) == {"all": {"hit@1": pytest.approx(2 / 3)},
                               "by_kind": {"factoid": {"hit@1": 0.5}, "howto": {"hit@1": 1.0}}}
    assert aggregate([]) == {"all": {}, "by_kind": {}}


@pytest.mark.parametrize(("values", "q", "expected"), [
    ([], 0.5, None), ([7.0], 0.95, 7.0), ([1.0, 2.0, 3.0, 4.0], 0.5, 2.5), ([10.0, 20.0], 0.95, 19.5),
])
def test_percentiles_interpolate_between_ranks(values, q, expected):
    assert percentile(values, q) == (pytest.approx(expected) if expected is not None else None)


def answer(kind="factoid", text="It is 32.", refused=False, cited=("r",), retrieved=("r", "x"), relevant=("r",),
           terms=("32",), ms=10.0) -> AnswerResult:
    return AnswerResult(kind, text, refused, tuple(cited), frozenset(retrieved), frozenset(relevant), tuple(terms), ms)


@pytest.mark.parametrize(("result", "correct", "precise"), [
    (answer(), True, 1),
    (answer(text="It is THIRTY-two (32)"), True, 1),
    (answer(terms=("32", "cpu_count")), False, 1),  # every term must be present
    (answer(text="I don't have information about that on this site. 32", refused=True, cited=()), False, 0),
    (answer(cited=("x",)), True, 0),  # retrieved but not relevant
    (answer(cited=("r",), retrieved=("x",)), True, 0),  # relevant but not retrieved for this question
    (answer(cited=(None, "r")), True, 1),  # a citation that maps to no page is imprecise
    (answer(kind="negative", refused=True, cited=(), relevant=(), terms=()), True, 0),
    (answer(kind="negative", cited=("x",), relevant=(), terms=()), False, 0),
])
def test_an_answer_is_correct_when_it_holds_every_term_and_precise_when_citing_relevant_retrieved_pages(
        result, correct, precise):
    assert result.correct is correct
    assert result.precise_citations == precise


def test_answer_metrics_split_refusals_between_negatives_and_answerable_questions():
    results = [
        answer(ms=10.0),  # correct, 1 precise citation
        answer(text="no idea", refused=True, cited=(), ms=20.0),  # false refusal
        answer(text="wrong", cited=("r", "x"), kind="howto", ms=30.0),  # incorrect, 1 of 2 precise
        answer(kind="negative", refused=True, cited=(), relevant=(), terms=(), ms=40.0),
        answer(kind="negative", text="made up", cited=("x",), relevant=(), terms=(), ms=50.0),
    ]
    m = answer_metrics(results)
    assert m["correct"] == pytest.approx(1 / 3)
    assert m["false_refusal"] == pytest.approx(1 / 3)
    assert m["refusal"] == 0.5
    assert m["citation_precision"] == pytest.approx(2 / 4)
    assert m["latency_ms"] == {"p50": 30.0, "p95": pytest.approx(48.0)}
    assert m["by_kind"]["negative"]["correct"] is None and m["by_kind"]["negative"]["refusal"] == 0.5
    assert m["by_kind"]["howto"] == {"correct": 0.0, "refusal": None, "false_refusal": 0.0,
                                     "citation_precision": 0.5, "latency_ms": {"p50": 30.0, "p95": 30.0}}
    assert answer_metrics([answer(refused=True, cited=())])["citation_precision"] is None


def line(**overrides) -> str:
    q = {"id": "q-1", "question": "how many threads?", "relevant": ["library/x.html"], "answer": "32",
         "must_contain": ["CPU_count"], "kind": "factoid"}
    return json.dumps({k: v for k, v in {**q, **overrides}.items() if v is not ...})


def test_questions_are_read_one_per_line_with_terms_lower_cased():
    [q] = parse_questions(["", line(), "   "])
    assert (q.id, q.relevant, q.must_contain, q.kind) == ("q-1", ("library/x.html",), ("cpu_count",), "factoid")
    [neg] = parse_questions([line(kind="negative", relevant=[], must_contain=[])])
    assert neg.relevant == () and neg.kind == "negative"


@pytest.mark.parametrize(("lines", "message"), [
    ([line(), "{not json"], r"qs:2: not valid JSON"),
    (["[1, 2]"], r"qs:1: expected a JSON object"),
    ([line(question=...)], r"qs:1: missing or invalid 'question' \(a str\)"),
    ([line(relevant="library/x.html")], r"qs:1: missing or invalid 'relevant' \(a list\)"),
    ([line(), line(id="q-2", kind="trivia")], r"qs:2: unknown kind 'trivia' \(one of factoid, howto"),
    ([line(kind="negative")], r"qs:1: a negative question has no relevant pages"),
    ([line(relevant=[])], r"qs:1: relevant must name at least one page"),
    ([line(question="  ")], r"qs:1: a question needs some text"),
    ([line(), line()], r"qs:2: id 'q-1' is used twice"),
    (["", " "], r"qs: no questions"),
])
def test_a_bad_question_file_is_refused_naming_the_line(lines, message):
    with pytest.raises(CmsragError, match=message):
        parse_questions(lines, "qs")
