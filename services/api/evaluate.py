"""Retrieval and answer quality metrics for `cmsrag eval`: pure functions over ranked pages and answers.

Relevance is judged per **page** (a document's source id), not per passage: a visitor is helped by reaching the
right page, and one page is often split into many passages. Ranked passages are therefore collapsed to pages,
keeping each page's first (best) rank, and the metrics read the first `k` pages with binary relevance.
Questions with nothing relevant (negatives) have no rank quality to measure: they are left out of retrieval
metrics and judged on the answer instead (the right reply is a refusal).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from shared.errors import CmsragError

KINDS = ("factoid", "howto", "conceptual", "negative")
HITS_AT = (1, 3, 5)
_FIELDS = {"id": str, "question": str, "relevant": list, "answer": str, "must_contain": list, "kind": str}


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    relevant: tuple[str, ...]
    answer: str
    must_contain: tuple[str, ...]
    kind: str


def parse_questions(lines: Iterable[str], where: str = "questions") -> list[Question]:
    """One `Question` per non-blank JSON line; `CmsragError` naming the line of the first mistake."""
    out: list[Question] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CmsragError(f"{where}:{n}: not valid JSON ({exc.msg})") from None
        if not isinstance(raw, dict):
            raise CmsragError(f"{where}:{n}: expected a JSON object")
        for name, kind in _FIELDS.items():
            if not isinstance(raw.get(name), kind):
                raise CmsragError(f"{where}:{n}: missing or invalid {name!r} (a {kind.__name__})")
        q = Question(raw["id"], raw["question"].strip(), tuple(map(str, raw["relevant"])), raw["answer"],
                     tuple(str(t).lower() for t in raw["must_contain"]), raw["kind"])
        problem = (f"unknown kind {q.kind!r} (one of {', '.join(KINDS)})" if q.kind not in KINDS
                   else "a question needs some text" if not q.question
                   else "a negative question has no relevant pages" if q.kind == "negative" and q.relevant
                   else "relevant must name at least one page" if q.kind != "negative" and not q.relevant
                   else f"id {q.id!r} is used twice" if any(p.id == q.id for p in out) else None)
        if problem:
            raise CmsragError(f"{where}:{n}: {problem}")
        out.append(q)
    if not out:
        raise CmsragError(f"{where}: no questions")
    return out


def metric_names(k: int) -> list[str]:
    return [f"hit@{n}" for n in HITS_AT] + [f"mrr@{k}", f"ndcg@{k}"]


def unique_pages(source_ids: Iterable[str]) -> list[str]:
    """Pages in rank order, each at its first (best) rank: a page's later passages add nothing."""
    return list(dict.fromkeys(source_ids))


def first_relevant_rank(pages: Sequence[str], relevant: Iterable[str]) -> int | None:
    """1-based rank of the first relevant page, or None when none was retrieved."""
    wanted = set(relevant)
    return next((i for i, p in enumerate(pages, 1) if p in wanted), None)


def hit_at(pages: Sequence[str], relevant: Iterable[str], k: int) -> float:
    rank = first_relevant_rank(pages[:k], relevant)
    return 1.0 if rank is not None else 0.0


def mrr_at(pages: Sequence[str], relevant: Iterable[str], k: int) -> float:
    rank = first_relevant_rank(pages[:k], relevant)
    return 1.0 / rank if rank is not None else 0.0


def ndcg_at(pages: Sequence[str], relevant: Iterable[str], k: int) -> float:
    """Binary-relevance nDCG: gains 1/log2(rank+1), over the best possible with min(|relevant|, k) hits."""
    wanted = set(relevant)
    dcg = sum(1.0 / math.log2(i + 1) for i, p in enumerate(pages[:k], 1) if p in wanted)
    ideal = sum(1.0 / math.log2(i + 1) for i in range(1, min(len(wanted), k) + 1))
    return dcg / ideal if ideal else 0.0


def retrieval_metrics(pages: Sequence[str], relevant: Iterable[str], k: int) -> dict[str, float]:
    wanted = set(relevant)
    values = [hit_at(pages, wanted, n) for n in HITS_AT] + [mrr_at(pages, wanted, k), ndcg_at(pages, wanted, k)]
    return dict(zip(metric_names(k), values, strict=True))


def mean(values: Iterable[float | None]) -> float | None:
    """The mean of the known values; None when there are none (a metric that does not apply)."""
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def aggregate(rows: Sequence[tuple[str, dict[str, float]]]) -> dict[str, Any]:
    """`(kind, metrics)` per question → `{"all": means, "by_kind": {kind: means}}` (kinds in `KINDS` order)."""

    def means(subset: Sequence[dict[str, float]]) -> dict[str, float | None]:
        names = list(subset[0]) if subset else []
        return {name: mean(m[name] for m in subset) for name in names}

    by_kind = {kind: means([m for k, m in rows if k == kind]) for kind in KINDS if any(k == kind for k, _ in rows)}
    return {"all": means([m for _, m in rows]), "by_kind": by_kind}


@dataclass(frozen=True)
class AnswerResult:
    """One answered question: what came back, and what it is judged against."""

    kind: str
    answer: str
    refused: bool
    cited_pages: tuple[str | None, ...]  # None: a citation whose page could not be identified
    retrieved_pages: frozenset[str]
    relevant: frozenset[str]
    must_contain: tuple[str, ...]
    latency_ms: float

    @property
    def correct(self) -> bool:
        """A negative is answered correctly by refusing; any other by an answer holding every expected term."""
        if self.kind == "negative":
            return self.refused
        text = self.answer.lower()
        return not self.refused and all(term in text for term in self.must_contain)

    @property
    def precise_citations(self) -> int:
        return sum(1 for p in self.cited_pages if p is not None and p in self.retrieved_pages and p in self.relevant)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def answer_metrics(results: Sequence[AnswerResult], *, by_kind: bool = True) -> dict[str, Any]:
    """Correct and false-refusal rates over answerable questions, refusal rate over negatives, citation
    precision over every citation given (a negative's citations are all imprecise), ask latency p50/p95."""
    answerable = [r for r in results if r.kind != "negative"]
    negatives = [r for r in results if r.kind == "negative"]
    cited = sum(len(r.cited_pages) for r in results)
    latencies = [r.latency_ms for r in results]
    out: dict[str, Any] = {
        "correct": mean(float(r.correct) for r in answerable),
        "refusal": mean(float(r.refused) for r in negatives),
        "false_refusal": mean(float(r.refused) for r in answerable),
        "citation_precision": sum(r.precise_citations for r in results) / cited if cited else None,
        "latency_ms": {"p50": percentile(latencies, 0.5), "p95": percentile(latencies, 0.95)},
    }
    if by_kind:
        out["by_kind"] = {kind: answer_metrics([r for r in results if r.kind == kind], by_kind=False)
                          for kind in KINDS if any(r.kind == kind for r in results)}
    return out


def report(questions: list[Question], ranked: dict[str, list[list[str]]],
           answers: list[tuple[AnswerResult, list[str]]] | None, k: int) -> dict[str, Any]:
    """The figures and per-question details `cmsrag eval` prints and writes: `ranked` holds each mode's pages
    per question (in question order), `answers` each question's result with its cited URLs."""
    counts = {kind: sum(q.kind == kind for q in questions) for kind in KINDS}
    retrieval = {mode: aggregate([(q.kind, retrieval_metrics(p, q.relevant, k))
                                  for q, p in zip(questions, pages, strict=True) if q.kind != "negative"])
                 for mode, pages in ranked.items()}
    details = []
    for i, q in enumerate(questions):
        found = {mode: {"pages": pages[i], "first_relevant_rank": first_relevant_rank(pages[i], q.relevant)}
                 for mode, pages in ranked.items()}
        d: dict[str, Any] = {"id": q.id, "kind": q.kind, "question": q.question, "relevant": list(q.relevant),
                             "must_contain": list(q.must_contain), "retrieval": found}
        if answers:
            a, urls = answers[i]
            d |= {"answer": a.answer, "refused": a.refused, "correct": a.correct, "latency_ms": round(a.latency_ms, 1),
                  "cited": [{"url": u, "page": p} for u, p in zip(urls, a.cited_pages, strict=True)]}
        details.append(d)
    return {"counts": {"questions": len(questions), "negatives_excluded_from_retrieval": counts["negative"],
                       "by_kind": counts},
            "retrieval": retrieval, "answers": answer_metrics([a for a, _ in answers]) if answers else None,
            "questions": details}
