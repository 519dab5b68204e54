"""Request bodies and query strings, checked field by field: every mistake is a 4xx JSON error saying what.

Types are checked strictly (`"5"` is not an integer, `true` is not a number), unknown fields are refused (a
typo in a filter must not silently widen a search), and sizes are capped before any work is done.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from flask import request

from services.api.answer import AskRequest
from services.api.filters import FilterError, Filters, parse_filters
from services.api.llm import Turn
from shared.query_settings import QuerySettings

MODES = ("hybrid", "vector", "fulltext")


class BadRequest(Exception):
    """Raised for a request the API refuses; `status` is 400, 413, 415 or 422."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class SearchRequest:
    query: str
    k: int
    filters: Filters
    mode: str


def json_object() -> dict[str, Any]:
    if not request.is_json:
        raise BadRequest("send a JSON object with Content-Type: application/json", 415)
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # nesting deep enough to exhaust the parser's stack fits well inside the size cap
        raise BadRequest("the body is not valid JSON (nested too deeply)", 400) from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object", 400)
    return body


def text_field(body: Mapping[str, Any], name: str, limit: int) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"'{name}' must be a non-empty string")
    if "\x00" in value:
        raise BadRequest(f"'{name}' must not contain NUL characters")
    if not _encodable(value):  # JSON can carry lone surrogates ("\ud800") that no database or model accepts
        raise BadRequest(f"'{name}' must be valid Unicode text (it holds an unpaired surrogate)")
    if len(value) > limit:
        raise BadRequest(f"'{name}' is {len(value)} characters; the limit is {limit}", 413)
    return value.strip()


def _filters(raw: Any, sites: Collection[str]) -> Filters:
    try:
        return parse_filters(raw, sites)
    except FilterError as exc:
        raise BadRequest(str(exc)) from None


def _only(body: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = set(body) - allowed
    if unknown:
        raise BadRequest(f"unknown fields: {', '.join(sorted(unknown))} (allowed: {', '.join(sorted(allowed))})")


def search_request(body: Mapping[str, Any], q: QuerySettings, sites: Collection[str]) -> SearchRequest:
    _only(body, {"query", "k", "filters", "mode"})
    query = text_field(body, "query", q.max_query_chars)
    k = body.get("k", 5)
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= 50:
        raise BadRequest("'k' must be an integer from 1 to 50")
    mode = body.get("mode", "hybrid")
    if mode not in MODES:
        raise BadRequest(f"'mode' must be one of {', '.join(MODES)}")
    return SearchRequest(query, k, _filters(body.get("filters"), sites), mode)


def ask_request(body: Mapping[str, Any], q: QuerySettings, sites: Collection[str]) -> AskRequest:
    _only(body, {"question", "filters", "conversation"})
    question = text_field(body, "question", q.max_question_chars)
    return AskRequest(question, _filters(body.get("filters"), sites), _conversation(body.get("conversation"), q))


def ask_query_string(args: Mapping[str, str], q: QuerySettings, sites: Collection[str]) -> AskRequest:
    """`GET /v1/ask/stream?q=…&site=…&type=…&language=…` (EventSource can only GET)."""
    _only(args, {"q", "site", "type", "language"})
    question = text_field(args, "q", q.max_question_chars)
    raw: dict[str, Any] = {k: args[k] for k in ("site", "type", "language") if args.get(k)}
    return AskRequest(question, _filters(raw or None, sites))


def _conversation(raw: Any, q: QuerySettings) -> list[Turn]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise BadRequest("'conversation' must be a list of {\"role\": \"user\"|\"assistant\", \"content\": \"…\"}")
    if len(raw) > 2 * q.max_conversation_turns:
        raise BadRequest(f"'conversation' has {len(raw)} messages; the limit is {2 * q.max_conversation_turns}",
                         413)
    turns = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or set(item) != {"role", "content"} or item["role"] not in ("user",
                                                                                                   "assistant"):
            raise BadRequest(f"'conversation[{i}]' must be {{\"role\": \"user\"|\"assistant\", \"content\": \"…\"}}")
        content = item["content"]
        if (not isinstance(content, str) or len(content) > 4 * q.max_question_chars or "\x00" in content
                or not _encodable(content)):
            raise BadRequest(f"'conversation[{i}].content' must be a string of at most "
                             f"{4 * q.max_question_chars} characters")
        turns.append(Turn(item["role"], content))
    return turns


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
