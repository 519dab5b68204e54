"""Blueprint: `POST /v1/ask` (one JSON answer) and `GET|POST /v1/ask/stream` (Server-Sent Events)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, jsonify, request

from services.api.answer import AskRequest
from services.api.context import services
from services.api.sse import event_stream
from services.api.validate import ask_query_string, ask_request, json_object

bp = Blueprint("ask", __name__)


def _scoped(req: AskRequest) -> AskRequest:
    s = services()
    return AskRequest(req.question, s.scoped(g.caller, req.filters), req.conversation)


@bp.post("/v1/ask")
def v1_ask() -> Any:
    s = services()
    req = _scoped(ask_request(json_object(), s.settings.query, s.site_names))
    done: dict[str, Any] = {}
    for event, data in s.asker.events(req):
        if event == "done":
            done = data
    return jsonify(done)


@bp.post("/v1/ask/stream")
def v1_ask_stream_post() -> Any:
    s = services()
    req = _scoped(ask_request(json_object(), s.settings.query, s.site_names))
    return event_stream(s.asker.events(req))


@bp.get("/v1/ask/stream")
def v1_ask_stream_get() -> Any:
    s = services()
    req = _scoped(ask_query_string(request.args, s.settings.query, s.site_names))
    return event_stream(s.asker.events(req))
