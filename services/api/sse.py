"""Server-Sent Events for the streaming answer: one `event:`/`data:` frame per event, flushed as produced.

`X-Accel-Buffering: no` stops nginx from buffering the stream (its default for proxied responses), and
`Cache-Control: no-cache, no-transform` keeps other proxies from holding or compressing it. An error after
the stream has started cannot change the HTTP status any more, so it becomes an `error` event.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from flask import Response

from shared.errors import LanguageModelError
from shared.logs import get_logger

log = get_logger(__name__)
HEADERS = {"Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no", "Connection": "keep-alive"}


def frame(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n"


def event_stream(events: Iterator[tuple[str, dict[str, Any]]]) -> Response:
    def generate() -> Iterator[str]:
        yield ": cmsrag\n\n"  # a comment first: proxies and browsers see the stream open at once
        try:
            for event, data in events:
                yield frame(event, data)
        except LanguageModelError as exc:
            log.warning("ask_stream_failed", error=str(exc), retryable=exc.retryable)
            yield frame("error", {"error": f"the answering model failed: {exc}", "status": 503 if exc.retryable
                                  else 502})
        except Exception as exc:  # the response has started: report, never leave the client hanging
            log.exception("ask_stream_failed", error=str(exc))
            yield frame("error", {"error": "internal error while answering; please try again", "status": 500})

    return Response(generate(), mimetype="text/event-stream", headers=HEADERS)
