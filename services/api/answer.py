"""ask: retrieve passages, answer from them with citations, as a stream of events.

One generator serves `POST /v1/ask` (which keeps only the last event), the SSE endpoints and `cmsrag ask`:

    sources  {"citations": [...]}            the passages retrieved, numbered: the answer's [n] refer to them
    token    {"text": "..."}                 the answer as it is produced (already filtered, see citations.py)
    done     {"answer", "citations", ...}    the final answer and only the citations it uses

Nothing relevant retrieved → the fixed "I don't have information…" answer and no citations, without calling
a model. A model that fails before its first token is replaced by the extractive answerer (a visitor gets an
answer, marked `fallback`); a failure after that raises `LanguageModelError` for the caller to report.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from services.api.cache import AnswerCache, cache_key
from services.api.citations import StreamFilter, citations_for, cited_numbers, passage_pages
from services.api.filters import Filters
from services.api.llm import ExtractiveModel, LanguageModel, Turn, Usage, cost_usd
from services.api.prompt import NO_ANSWER, build_prompt
from services.api.search import Hit, search, searchable_chunks, unknown_terms
from shared import metrics
from shared.db import Database
from shared.embedders import Embedder
from shared.errors import LanguageModelError
from shared.logs import get_logger
from shared.settings import Settings

log = get_logger(__name__)
Event = tuple[str, dict[str, Any]]
CONFIDENT_SIMILARITY = 0.6  # above this, a passage is trusted even if the question has words the site lacks
LARGE_CORPUS = 1_000  # chunks; in a smaller site a missing everyday word ("often") means nothing


@dataclass(frozen=True)
class AskRequest:
    question: str
    filters: Filters = field(default_factory=Filters)
    conversation: list[Turn] = field(default_factory=list)


class Asker:
    def __init__(self, settings: Settings, db: Database, embedder: Embedder, model: LanguageModel,
                 cache: AnswerCache, *, vector_type: str = "vector") -> None:
        self.settings, self.db, self.embedder, self.model, self.cache = settings, db, embedder, model, cache
        self.vector_type = vector_type
        self.fallback: LanguageModel | None = None if model.provider == "extractive" else ExtractiveModel()

    def retrieve(self, req: AskRequest) -> list[Hit]:
        """Passages for the question; a follow-up is searched together with the previous question.

        None when the question names a term the site never mentions and no passage is a confident match: the
        passages found are then about something else that sounds alike, and answering from them misleads.
        """
        earlier = [t.content for t in req.conversation if t.role == "user"][-1:]
        query = " ".join([*earlier, req.question])
        [vector] = self.embedder.embed([query])
        with self.db.connection() as conn:
            hits = search(conn, vector, query, k=self.settings.query.ask_passages, filters=req.filters,
                          vector_type=self.vector_type, min_similarity=self.settings.query.min_similarity)
            if hits and max(h.similarity for h in hits) < CONFIDENT_SIMILARITY and \
                    searchable_chunks(conn, req.filters) >= LARGE_CORPUS:
                missing = unknown_terms(conn, req.question, filters=req.filters)
                if missing:
                    log.info("question_off_site", terms=missing, best_similarity=round(hits[0].similarity, 3))
                    return []
        return hits

    def events(self, req: AskRequest) -> Iterator[Event]:
        for event, data in self._events(req):
            if event == "done":
                metrics.answer_done(data)
            yield event, data

    def _events(self, req: AskRequest) -> Iterator[Event]:
        started = time.perf_counter()
        hits = self.retrieve(req)
        retrieval_ms = round((time.perf_counter() - started) * 1000, 1)
        citations = citations_for(hits)
        yield "sources", {"citations": [c.as_dict() for c in citations]}
        base: dict[str, Any] = {"mode": self.model.provider, "model": self.model.model, "cached": False,
                                "fallback": False, "timings": {"retrieval_ms": retrieval_ms}}
        if not hits:
            yield "token", {"text": NO_ANSWER}
            yield "done", self._finish(base, req, NO_ANSWER, [], Usage(), started, refused=True)
            return
        key = cache_key(req.question, req.filters, f"{self.model.provider}:{self.model.model}", hits)
        cached = None if req.conversation else self.cache.get(key)
        if not req.conversation and self.cache.enabled:
            metrics.answer_cache(hit=cached is not None)
        if cached is not None:
            yield "token", {"text": cached["answer"]}
            cached.update(cached=True, usage={"input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0})
            cached["timings"] = {"retrieval_ms": retrieval_ms, "total_ms": _ms(started)}
            log.info("answer_served", cached=True, mode=cached.get("mode"), refused=cached.get("refused"))
            yield "done", cached
            return
        model, text_filter, usage = self.model, StreamFilter(passage_pages(hits)), Usage()
        prompt = build_prompt(req.question, hits, req.conversation,
                              max_turns=self.settings.query.max_conversation_turns)
        first_token_at: float | None = None
        try:
            for piece in model.stream(prompt):
                if isinstance(piece, Usage):
                    usage = piece
                    continue
                if first_token_at is None:
                    first_token_at = time.perf_counter()
                if out := text_filter.feed(piece):
                    yield "token", {"text": out}
        except LanguageModelError as exc:
            if first_token_at is not None or self.fallback is None:
                raise
            log.warning("llm_failed_fallback", provider=model.provider, error=str(exc), retryable=exc.retryable)
            model, base["fallback"] = self.fallback, True
            base["mode"], base["model"] = model.provider, model.model
            yield from self._stream_plain(model, prompt, text_filter)
        if tail := text_filter.flush():
            yield "token", {"text": tail}
        answer = text_filter.text.strip()
        refused = answer.startswith(NO_ANSWER[:30]) or not answer
        cited = [] if refused else cited_numbers(answer)
        if first_token_at is not None:
            base["timings"]["first_token_ms"] = round((first_token_at - started) * 1000, 1)
        response = self._finish(base, req, answer or NO_ANSWER, [citations[n - 1].as_dict() for n in cited], usage,
                                started, refused=refused)
        if not req.conversation and not base["fallback"]:
            self.cache.put(key, req.question, response, [h.chunk_id for h in hits])
        yield "done", response

    def _stream_plain(self, model: LanguageModel, prompt: Any, text_filter: StreamFilter) -> Iterator[Event]:
        for piece in model.stream(prompt):
            if isinstance(piece, str) and (out := text_filter.feed(piece)):
                yield "token", {"text": out}

    def _finish(self, base: dict[str, Any], req: AskRequest, answer: str, citations: list[dict[str, Any]],
                usage: Usage, started: float, *, refused: bool) -> dict[str, Any]:
        cost = cost_usd(self.settings.query, base["model"], usage)
        response = {**base, "answer": answer, "citations": citations, "refused": refused,
                    "usage": {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
                              "cost_usd": round(cost, 6)},
                    "timings": {**base["timings"], "total_ms": _ms(started)}}
        log.info("answer_generated", mode=base["mode"], model=base["model"], refused=refused,
                 citations=len(citations), input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
                 cost_usd=round(cost, 6), fallback=base["fallback"], total_ms=response["timings"]["total_ms"])
        return response


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
