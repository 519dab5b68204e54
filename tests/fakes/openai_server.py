"""A fake OpenAI API on 127.0.0.1 for the real `openai` SDK: embeddings and chat completions.

`with FakeOpenAIServer() as srv: openai.OpenAI(base_url=srv.base_url, api_key="x")`. Replies follow the
real wire format closely enough for the SDK's parsers and helpers (including `chat.completions.stream()`):

- `POST /v1/embeddings`: float lists or base64 little-endian float32 per `encoding_format` (the SDK asks
  for base64 by default), vectors from `fake_vector` so texts sharing words are close, `dimensions` honoured
  (400 for ada-002, which refuses it, as OpenAI does), at most `max_inputs` inputs (400 beyond, like
  OpenAI's 2,048), `usage.prompt_tokens`. `reverse_data=True` returns items out of order, as a client must
  sort by `index`.
- `POST /v1/chat/completions`: a deterministic answer (`answer(messages)`, by default an echo of the last
  user message), as one completion or as SSE chunks ending in `data: [DONE]`.

Fault knobs (latency, `fail_next`, `poison`, counters) come from `FakeHTTPServer`.
"""

from __future__ import annotations

import base64
import json
import struct
import time
from collections.abc import Callable, Iterator
from typing import Any

from shared.embedders.fake import count_word_pieces, fake_vector
from tests.fakes.http_server import FakeHTTPServer, Reply

NATIVE_DIMENSIONS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}
NO_DIMENSIONS_PARAM = {"text-embedding-ada-002"}


def echo_answer(messages: list[dict[str, Any]]) -> str:
    """The default answer: names the last user message, so tests can tell answers apart."""
    users = [m for m in messages if m.get("role") == "user"]
    content = users[-1].get("content", "") if users else ""
    if isinstance(content, list):  # content parts
        content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return f"You asked: {content}"


def split_words(text: str) -> list[str]:
    """Pieces to stream: each word with the space before it, so joining them gives `text` back."""
    words = text.split(" ")
    return [words[0]] + [" " + w for w in words[1:]] if text else []


class FakeOpenAIServer(FakeHTTPServer):
    """See the module docstring; `default_dimensions` applies to models it does not know (compatible mode)."""

    def __init__(
        self,
        latency: float = 0.0,
        *,
        default_dimensions: int = 384,
        max_inputs: int = 2048,
        answer: Callable[[list[dict[str, Any]]], str] = echo_answer,
    ) -> None:
        super().__init__(latency)
        self.default_dimensions = default_dimensions
        self.max_inputs = max_inputs
        self.answer = answer
        self.reverse_data = False

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def count_inputs(self, path: str, body: dict[str, Any]) -> int:
        given = body.get("input")
        return len(given) if path == "/v1/embeddings" and isinstance(given, list) else 1

    def route(self, path: str, body: dict[str, Any]) -> Reply:
        if path == "/v1/embeddings":
            return self._embeddings(body)
        if path == "/v1/chat/completions":
            return self._chat(body)
        return Reply(404, self.error_body(404, f"Invalid URL (POST {path})"))

    def error_body(self, status: int, message: str) -> Any:
        kind = {400: "invalid_request_error", 401: "authentication_error", 429: "rate_limit_exceeded"}
        return {"error": {"message": message, "type": kind.get(status, "server_error"), "param": None,
                          "code": None}}

    def _embeddings(self, body: dict[str, Any]) -> Reply:
        model = str(body.get("model", ""))
        given = body.get("input")
        texts = [given] if isinstance(given, str) else list(given or [])
        texts = [t if isinstance(t, str) else json.dumps(t) for t in texts]  # token arrays: any stable text
        if not texts or any(t == "" for t in texts):
            return Reply(400, self.error_body(400, "'$.input' is invalid: inputs must be non-empty strings"))
        if len(texts) > self.max_inputs:
            return Reply(400, self.error_body(400, f"'$.input' is too long: at most {self.max_inputs} inputs"))
        dims = body.get("dimensions")
        if dims is not None and model in NO_DIMENSIONS_PARAM:
            return Reply(400, self.error_body(400, "This model does not support specifying dimensions."))
        size = int(dims) if dims is not None else NATIVE_DIMENSIONS.get(model, self.default_dimensions)
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for i, text in enumerate(texts):
            vector = fake_vector(text, size)
            encoded: Any = base64.b64encode(struct.pack(f"<{size}f", *vector)).decode() if as_base64 else vector
            data.append({"object": "embedding", "index": i, "embedding": encoded})
        if self.reverse_data:
            data.reverse()
        tokens = sum(count_word_pieces(t) for t in texts)
        return Reply(body={"object": "list", "data": data, "model": model,
                           "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    def _chat(self, body: dict[str, Any]) -> Reply:
        model = str(body.get("model", ""))
        text = self.answer(list(body.get("messages") or []))
        prompt_tokens = sum(count_word_pieces(s) for s in _message_texts(body))
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(split_words(text)),
                 "total_tokens": prompt_tokens + len(split_words(text))}
        ident, created = f"chatcmpl-fake{self.requests['/v1/chat/completions']}", int(time.time())
        if not body.get("stream"):
            return Reply(body={
                "id": ident, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                             "message": {"role": "assistant", "content": text, "refusal": None}}],
                "usage": usage, "system_fingerprint": None,
            })
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return Reply(events=_chat_events(ident, created, model, text, usage if include_usage else None))


def _message_texts(body: dict[str, Any]) -> Iterator[str]:
    for message in body.get("messages") or []:
        content = message.get("content")
        if isinstance(content, str):
            yield content


def _chat_events(ident: str, created: int, model: str, text: str, usage: dict[str, int] | None) -> Iterator[bytes]:
    def chunk(delta: dict[str, Any], finish: str | None = None, choices: bool = True, **extra: Any) -> bytes:
        payload = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model,
                   "system_fingerprint": None,
                   "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
                   if choices else [], **extra}
        return b"data: " + json.dumps(payload).encode() + b"\n\n"

    yield chunk({"role": "assistant", "content": "", "refusal": None})
    for piece in split_words(text):
        yield chunk({"content": piece})
    yield chunk({}, "stop")
    if usage is not None:
        yield chunk({}, choices=False, usage=usage)
    yield b"data: [DONE]\n\n"
