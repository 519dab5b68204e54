"""The webhook receiver: verify, validate, make durable, answer. Flask app factory; gunicorn in production.

A 2xx means the event is durable: it is recorded in Postgres (`webhook_deliveries` for de-duplication,
`pending` as the outbox) and published to RabbitMQ with a publisher confirm. If the publish fails, the
delivery record is removed again and the sender gets 503 + Retry-After; the pending row stays and reconcile
re-sends it. Only a delivery whose publish was confirmed is answered "duplicate": a retry that arrives while
the first attempt's publish is still under way (the sender gave up waiting) publishes again, since a second
message for the same ids changes nothing. Nothing answered 2xx can be lost.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, g, jsonify, request
from werkzeug.exceptions import HTTPException

from services.embedder import jobs
from services.embedder.queue import IndexQueue
from services.ingest.events import InvalidEvent, parse_event
from shared import metrics
from shared.db import Database
from shared.logs import get_logger
from shared.settings import Settings
from shared.signing import DEFAULT_TOLERANCE, SignatureError, verify

log = get_logger(__name__)
MAX_BODY_BYTES = 64 * 1024
RETRY_AFTER_SECONDS = 30
CONFIRM_WAIT_SECONDS = 2.0  # a confirm takes milliseconds; a copy waiting longer publishes again


def create_app(settings: Settings, db: Database, queue: Callable[[], IndexQueue], *,
               ready: Callable[[], None] | None = None, tolerance: int = DEFAULT_TOLERANCE) -> Flask:
    """`queue` is called per request (the broker's connection is per thread); `ready` raises when a dependency
    is down (for /readyz)."""
    app = Flask("cmsrag.ingest")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    metrics.instrument(app, "receiver", enabled=settings.metrics_enabled)
    sites = {s.name: s for s in settings.sites}

    def error(status: int, message: str, **extra: Any) -> Any:
        log.info("webhook_rejected", status=status, reason=message, **extra)
        return jsonify(error=message), status

    def unavailable(site_name: str, webhook_id: str, exc: Exception) -> Any:
        log.error("webhook_not_queued", site=site_name, webhook_id=webhook_id, error=str(exc) or repr(exc))
        resp = jsonify(error="the event could not be made durable; retry later", webhook_id=webhook_id)
        return resp, 503, {"Retry-After": str(RETRY_AFTER_SECONDS)}

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        return jsonify(error=exc.description or exc.name), exc.code or 500

    @app.after_request
    def count_webhook(response: Any) -> Any:
        # One count per delivery, whichever way it was answered (a 413 never reaches the view's own returns).
        # Site and event are labels only once known to be real: a configured site, a validated event.
        if request.endpoint == "webhook":
            metrics.webhook(g.get("site", "unknown"), g.get("event", "unknown"), response.status_code)
        return response

    @app.get("/healthz")
    def healthz() -> Any:
        return jsonify(status="ok")

    @app.get("/readyz")
    def readyz() -> Any:
        try:
            with db.connection() as conn:  # the table every webhook writes: an unmigrated database is not ready
                conn.execute("SELECT 1 FROM webhook_deliveries LIMIT 1")
            if ready is not None:
                ready()
        except Exception as exc:
            return jsonify(status="unavailable", error=str(exc) or exc.__class__.__name__), 503
        return jsonify(status="ready")

    @app.post("/webhooks/<kind>/<site_name>")
    def webhook(kind: str, site_name: str) -> Any:
        site = sites.get(site_name)
        if kind not in ("wordpress", "wagtail") or site is None or site.kind != kind:
            return error(404, f"no {kind} site named {site_name!r} is configured", site=site_name)
        g.site = site_name
        if not request.is_json:
            return error(415, "send JSON with Content-Type: application/json", site=site_name)
        raw = request.get_data(cache=True)
        try:
            webhook_id = verify(site.webhook_secrets, dict(request.headers), raw, tolerance=tolerance)
        except SignatureError as exc:
            return error(401, f"signature rejected: {exc}", site=site_name)
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested deeper than the parser goes
            return error(400, "the body is not valid JSON", site=site_name, webhook_id=webhook_id)
        try:
            event = parse_event(kind, site_name, body)
        except InvalidEvent as exc:
            return error(422, str(exc), site=site_name, webhook_id=webhook_id)
        g.event = event.event
        try:
            with db.connection() as conn, conn.transaction():
                # The upsert locks the row until this transaction ends, so two copies of one delivery take turns
                # here; `xmax <> 0` is true when the row already existed (the conflict branch updated it).
                seen = conn.execute(
                    "INSERT INTO webhook_deliveries (site, webhook_id, event) VALUES (%s, %s, %s) "
                    "ON CONFLICT (site, webhook_id) DO UPDATE SET event = webhook_deliveries.event "
                    "RETURNING (xmax <> 0), confirmed_at IS NOT NULL",
                    (site_name, webhook_id, event.event)).fetchone()
                existed, confirmed = bool(seen and seen[0]), bool(seen and seen[1])
                if not existed:
                    jobs.requested(conn, event.refs, event.pipeline_event, webhook_id)
        except Exception as exc:  # database down: nothing was recorded, so the sender must retry
            return unavailable(site_name, webhook_id, exc)
        if existed and not confirmed:  # another copy is publishing (or failed to): give it a moment
            confirmed = _confirmed_within(db, site_name, webhook_id, CONFIRM_WAIT_SECONDS)
        if confirmed:
            log.info("webhook_duplicate", site=site_name, webhook_id=webhook_id)
            return jsonify(status="duplicate", webhook_id=webhook_id), 200
        if existed:  # recorded, but its publish is stuck or failed: publish again rather than trust it
            log.info("webhook_republished", site=site_name, webhook_id=webhook_id)
        try:
            q = queue()
            for ref in event.refs:
                q.publish(ref, event.pipeline_event, webhook_id)
        except Exception as exc:
            try:
                with db.connection() as conn:
                    conn.execute("DELETE FROM webhook_deliveries WHERE site = %s AND webhook_id = %s "
                                 "AND confirmed_at IS NULL", (site_name, webhook_id))
            except Exception as cleanup_exc:  # the retry then publishes again anyway; pending still has it
                log.error("webhook_delivery_cleanup_failed", site=site_name, webhook_id=webhook_id,
                          error=str(cleanup_exc))
            return unavailable(site_name, webhook_id, exc)
        try:
            with db.connection() as conn:
                conn.execute("UPDATE webhook_deliveries SET confirmed_at = now() WHERE site = %s AND webhook_id = %s",
                             (site_name, webhook_id))
        except Exception as exc:  # published and in `pending`: safe; a retry will only publish once more
            log.warning("webhook_confirm_not_recorded", site=site_name, webhook_id=webhook_id, error=str(exc))
        log.info("webhook_queued", site=site_name, webhook_id=webhook_id, webhook_event=event.event,
                 documents=len(event.refs))
        return jsonify(status="queued", webhook_id=webhook_id, documents=len(event.refs)), 202

    return app


def _confirmed_within(db: Database, site: str, webhook_id: str, seconds: float) -> bool:
    """Wait up to `seconds` for another request's publish of this delivery to be confirmed."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with db.connection() as conn:
                row = conn.execute("SELECT confirmed_at IS NOT NULL FROM webhook_deliveries "
                                   "WHERE site = %s AND webhook_id = %s", (site, webhook_id)).fetchone()
        except Exception:  # cannot tell: publishing again is the safe side
            return False
        if row is None or row[0] or time.monotonic() >= deadline:
            return bool(row and row[0])
        time.sleep(0.05)
