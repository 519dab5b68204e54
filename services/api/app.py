"""The query service's Flask app (app factory; gunicorn in production, see wsgi.py).

Every `/v1/` request is identified (API key or public caller), rate limited and given CORS headers by the
hooks here, then handled by a blueprint: `http_search` (search, index health) and `http_ask` (ask, streaming).
Every refusal is a 4xx JSON `{"error": …}` that says what is wrong; nothing answers a 500 for input.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from flask import Flask, Response, g, jsonify, request, send_from_directory
from psycopg_pool import PoolTimeout
from werkzeug.exceptions import HTTPException

from services.api import http_ask, http_search
from services.api.access import Access
from services.api.context import Services
from services.api.openapi import openapi_document
from services.api.validate import BadRequest
from shared import metrics
from shared.errors import AccessDenied, LanguageModelError, RateLimited, TransientError
from shared.logs import get_logger

if TYPE_CHECKING:
    from services.cli.app import App

STATIC = Path(__file__).parent / "static"
log = get_logger(__name__)


def create_app(ctx: App) -> Flask:
    q = ctx.settings.query
    app = Flask("cmsrag.api", static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = q.max_body_bytes
    # GET /metrics, outside the /v1/ hooks: no key, no rate limit
    metrics.instrument(app, "api", enabled=ctx.settings.metrics_enabled)
    vector_type = ctx.check_index()
    chat_page = (STATIC / "index.html").read_text(encoding="utf-8")  # read once, not per visitor
    access = Access(q, ctx.db)
    asker = ctx.asker
    app.extensions["cmsrag"] = Services(ctx, asker, access, vector_type)
    app.register_blueprint(http_search.bp)
    app.register_blueprint(http_ask.bp)
    _register_errors(app)

    @app.before_request
    def identify() -> Any:
        if not request.path.startswith("/v1/"):
            return None
        if request.method == "OPTIONS":  # CORS preflight: answered without a key, as browsers send none
            return Response(status=204)
        g.caller = access.caller(request.headers, request.remote_addr)
        g.allowance = access.limit(g.caller)
        return None

    @app.after_request
    def headers(response: Response) -> Response:
        if request.path.startswith("/v1/"):
            response.headers.update(access.cors_headers(request.headers.get("Origin")))
            allowance = g.get("allowance")
            if allowance is not None:
                response.headers.update(allowance.headers())
        return response

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
        return jsonify(status="ready", llm=q.llm, model=q.llm_model)

    @app.get("/openapi.json")
    def openapi() -> Any:
        return jsonify(openapi_document())

    @app.get("/")
    def index() -> Any:
        site = request.args.get("site") or (ctx.settings.sites[0].name if ctx.settings.sites else "")
        return Response(chat_page.replace("__CMSRAG_SITE__", _attr(site)), mimetype="text/html")

    @app.get("/widget.js")
    def widget_js() -> Any:
        return _static("widget.js")

    @app.get("/widget.css")
    def widget_css() -> Any:
        return _static("widget.css")

    return app


def _static(name: str) -> Any:
    response = send_from_directory(STATIC, name, max_age=300)
    response.headers["Access-Control-Allow-Origin"] = "*"  # a script/style any site may embed
    return response


def _attr(value: str) -> str:
    return "".join(c for c in value if c.isalnum() or c in "-_")


def _register_errors(app: Flask) -> None:
    @app.errorhandler(BadRequest)
    def bad_request(exc: BadRequest) -> Any:
        return jsonify(error=str(exc)), exc.status

    @app.errorhandler(AccessDenied)
    def denied(exc: AccessDenied) -> Any:
        headers = {"WWW-Authenticate": 'Bearer realm="cmsrag"'} if exc.status == 401 else {}
        return jsonify(error=str(exc)), exc.status, headers

    @app.errorhandler(RateLimited)
    def limited(exc: RateLimited) -> Any:
        metrics.rate_limited(exc.bucket)
        retry = max(1, round(exc.retry_after + 0.49))
        return jsonify(error=str(exc), retry_after=retry), 429, {"Retry-After": str(retry)}

    @app.errorhandler(LanguageModelError)
    def llm_failed(exc: LanguageModelError) -> Any:
        status = 503 if exc.retryable else 502
        return jsonify(error=f"the answering model failed: {exc}"), status, ({"Retry-After": "10"} if
                                                                               exc.retryable else {})

    @app.errorhandler(TransientError)
    @app.errorhandler(psycopg.OperationalError)
    @app.errorhandler(PoolTimeout)
    def unavailable(exc: Exception) -> Any:
        log.warning("api_dependency_unavailable", path=request.path, error=str(exc))
        return jsonify(error="the index is temporarily unavailable; please retry"), 503, {"Retry-After": "5"}

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        return jsonify(error=exc.description or exc.name), exc.code or 500

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Any:
        log.exception("api_request_failed", path=request.path, error=str(exc))
        return jsonify(error="internal error; the request was logged"), 500


def serve(ctx: App, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve with Werkzeug for the demo; production runs the same app under gunicorn."""
    app = create_app(ctx)
    print(f"\nChat widget and API on http://{host}:{port}/  (POST /v1/ask, /v1/search; Ctrl-C to stop)")
    app.run(host=host, port=port, threaded=True, use_reloader=False)
