"""The query service's Flask app (app factory). For now: health, readiness and `POST /v1/search`.

Every bad request gets a 4xx with a JSON body that says what is wrong; nothing here answers a 500 for input.
`/v1/ask`, streaming, keys and limits arrive with the query-service issue.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from services.api.search import search

if TYPE_CHECKING:
    from services.cli.app import App

MAX_QUERY_CHARS = 2000
MAX_BODY_BYTES = 64 * 1024


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


def create_app(ctx: App) -> Flask:
    app = Flask("cmsrag.api")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES

    @app.errorhandler(BadRequest)
    def bad_request(exc: BadRequest) -> Any:
        return jsonify(error=str(exc)), exc.status

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        return jsonify(error=exc.description or exc.name), exc.code or 500

    @app.get("/healthz")
    def healthz() -> Any:
        return jsonify(status="ok")

    @app.get("/readyz")
    def readyz() -> Any:
        try:
            with ctx.db.connection() as conn:
                conn.execute("SELECT 1")
        except Exception as exc:
            return jsonify(status="unavailable", database=str(exc)), 503
        return jsonify(status="ready")

    @app.post("/v1/search")
    def v1_search() -> Any:
        body = _json_object()
        query = body.get("query")
        if not isinstance(query, str) or not query.strip():
            raise BadRequest("'query' must be a non-empty string")
        if len(query) > MAX_QUERY_CHARS:
            raise BadRequest(f"'query' is {len(query)} characters; the limit is {MAX_QUERY_CHARS}", 413)
        k = body.get("k", 5)
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= 50:
            raise BadRequest("'k' must be an integer from 1 to 50")
        site = body.get("site")
        if site is not None and (not isinstance(site, str) or site not in {s.name for s in ctx.settings.sites}):
            raise BadRequest(f"unknown site {site!r}")
        unknown = set(body) - {"query", "k", "site"}
        if unknown:
            raise BadRequest(f"unknown fields: {', '.join(sorted(unknown))}")
        [vector] = ctx.embedder.embed([query])
        with ctx.db.connection() as conn:
            hits = search(conn, vector, query, k=k, site=site, vector_type=vtype)
        return jsonify(query=query, results=[
            {"title": h.title, "url": h.link, "snippet": h.snippet(), "score": round(h.score, 6),
             "site": h.site, "heading_path": h.heading_path} for h in hits])

    vtype = ctx.check_index()
    return app


def _json_object() -> dict[str, Any]:
    if not request.is_json:
        raise BadRequest("send a JSON object with Content-Type: application/json", 415)
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object", 400)
    return body


def serve(ctx: App, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve with Werkzeug for the demo; production runs the same app under gunicorn."""
    app = create_app(ctx)
    print(f"\nAPI on http://{host}:{port}  (POST /v1/search {{\"query\": \"...\"}}; Ctrl-C to stop)")
    app.run(host=host, port=port, threaded=True, use_reloader=False)
