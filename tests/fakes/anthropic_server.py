"""A fake Anthropic Messages API on 127.0.0.1 for the real `anthropic` SDK.

`with FakeAnthropicServer() as srv: anthropic.Anthropic(base_url=srv.base_url, api_key="x")` (no `/v1`:
the SDK adds it). `POST /v1/messages` answers deterministically (`answer(messages)`, by default an echo of
the last user message), cut at `max_tokens` words with `stop_reason="max_tokens"` as the real API does.
With `stream: true` it sends the exact event sequence the SDK's `messages.stream()` helper needs:
`message_start` → `content_block_start` → `content_block_delta`… → `content_block_stop` → `message_delta`
→ `message_stop`, each as `event:` + `data:` lines. Errors use Anthropic's
`{"type": "error", "error": {...}}` shape (529 `overloaded_error` included).

Fault knobs (latency, `fail_next`, `poison`, counters) come from `FakeHTTPServer`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from shared.embedders.fake import count_word_pieces
from tests.fakes.http_server import FakeHTTPServer, Reply, strings_in
from tests.fakes.openai_server import echo_answer, split_words

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 500: "api_error",
               529: "overloaded_error"}


class FakeAnthropicServer(FakeHTTPServer):
    """See the module docstring."""

    def __init__(
        self, latency: float = 0.0, *, answer: Callable[[list[dict[str, Any]]], str] = echo_answer
    ) -> None:
        super().__init__(latency)
        self.answer = answer

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def route(self, path: str, body: dict[str, Any]) -> Reply:
        if path != "/v1/messages":
            return Reply(404, self.error_body(404, f"Not found: POST {path}"))
        if not isinstance(body.get("max_tokens"), int) or not body.get("messages"):
            return Reply(400, self.error_body(400, "max_tokens and messages are required"))
        pieces = split_words(self.answer(list(body["messages"])))
        stop_reason = "max_tokens" if len(pieces) > body["max_tokens"] else "end_turn"
        pieces = pieces[: body["max_tokens"]]
        ident = f"msg_fake{self.requests['/v1/messages']}"
        usage = {"input_tokens": sum(count_word_pieces(s) for s in strings_in([body.get("system"),
                                                                                body["messages"]])),
                 "output_tokens": len(pieces)}
        message = {"id": ident, "type": "message", "role": "assistant", "model": body.get("model", ""),
                   "content": [{"type": "text", "text": "".join(pieces)}], "stop_reason": stop_reason,
                   "stop_sequence": None, "usage": usage}
        if not body.get("stream"):
            return Reply(body=message)
        return Reply(events=_events(message, pieces))

    def error_body(self, status: int, message: str) -> Any:
        return {"type": "error", "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message}}


def _events(message: dict[str, Any], pieces: list[str]) -> Iterator[bytes]:
    def event(name: str, data: dict[str, Any]) -> bytes:
        return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n".encode()

    start = {**message, "content": [], "stop_reason": None,
             "usage": {"input_tokens": message["usage"]["input_tokens"], "output_tokens": 1}}
    yield event("message_start", {"message": start})
    yield event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
    yield event("ping", {})
    for piece in pieces:
        yield event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": piece}})
    yield event("content_block_stop", {"index": 0})
    yield event("message_delta", {"delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                                  "usage": {"output_tokens": len(pieces)}})
    yield event("message_stop", {})
