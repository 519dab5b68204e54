"""The dramatiq actors: thin wrappers that parse a message, call the pipeline and declare retry policy.

Messages carry ids only — (site, source id, event, delivery id) — never content or vectors.
`sync_document` serves webhooks and single requests on the documents queue; `sync_batch` serves backfill on
its own queue at lower priority, so a backfill of thousands of pages never delays an editor's change.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dramatiq
from dramatiq.broker import MessageProxy
from dramatiq.middleware import Retries

from services.embedder import jobs
from services.embedder.broker import queue_names
from services.embedder.pipeline import Pipeline
from shared import logs, metrics
from shared.db import Database
from shared.errors import PermanentError, TransientError
from shared.models import DocRef
from shared.settings import Settings

log = logs.get_logger(__name__)
SYNC_DOCUMENT = "sync_document"
SYNC_BATCH = "sync_batch"
BATCH_SIZE = 16


@dataclass(frozen=True)
class Actors:
    sync_document: dramatiq.Actor[..., Any]
    sync_batch: dramatiq.Actor[..., Any]


class Runtime:
    """Builds the worker's long-lived parts once per process, on first use (producers never need them)."""

    def __init__(self, settings: Settings, db: Database, pipeline_factory: Callable[[], Pipeline] | None = None):
        self.settings = settings
        self.db = db
        self._factory = pipeline_factory
        self._pipeline: Pipeline | None = None
        self._lock = threading.Lock()

    def pipeline(self) -> Pipeline:
        with self._lock:
            if self._pipeline is None:
                if self._factory is None:
                    from shared.embedders import make_embedder

                    self._pipeline = Pipeline(self.settings, self.db, make_embedder(self.settings))
                else:
                    self._pipeline = self._factory()
            return self._pipeline


class Bookkeeping(dramatiq.Middleware):
    """Binds ids to log lines, writes a failure row when the queue gives up, and
    counts each message's outcome (succeeded, retried, failed = given up, skipped).

    Registered *before* `Retries` because dramatiq runs `after_*` hooks in reverse order: we must see the
    `message.failed` flag that `Retries` sets.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self._started: dict[str, Any] = {}

    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        args = message.args
        logs.bind(message_id=message.message_id, actor=message.actor_name, site=args[0] if args else None,
                  source_id=args[1] if message.actor_name == SYNC_DOCUMENT and len(args) > 1 else None,
                  delivery_id=message.kwargs.get("delivery_id") or (args[3] if len(args) > 3 else None))
        self._started[message.message_id] = self.db.now()

    def after_process_message(self, broker: dramatiq.Broker, message: MessageProxy, *,
                              result: Any = None, exception: BaseException | None = None) -> None:
        started = self._started.pop(message.message_id, None)
        metrics.message(message.actor_name, "succeeded" if exception is None else
                        "failed" if message.failed else "retried")
        try:
            if started is None or message.actor_name not in (SYNC_DOCUMENT, SYNC_BATCH):
                return
            if message.actor_name == SYNC_DOCUMENT:
                refs = [DocRef(message.args[0], message.args[1])]
            else:
                refs = [DocRef(message.args[0], sid) for sid in message.args[1]]
            retries = message.options.get("retries", 0)
            # Success needs nothing here: `sync_document` clears `pending` itself, inside its per-document lock.
            with self.db.connection() as conn:
                if exception is not None and message.failed:
                    attempts = retries + 1 if isinstance(exception, PermanentError) else max(retries, 1)
                    for ref in refs:
                        jobs.failed(conn, ref, exception, attempts=attempts, started=started,
                                    message_id=message.message_id)
                    log.error("document_given_up", attempts=attempts, error=str(exception))
        except Exception as exc:  # bookkeeping must never crash the worker; reconcile is the net
            log.error("bookkeeping_failed", error=str(exc))
        finally:
            logs.clear()

    def after_skip_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        self._started.pop(message.message_id, None)
        metrics.message(message.actor_name, "skipped")
        logs.clear()


def declare_actors(broker: dramatiq.Broker, runtime: Runtime) -> Actors:
    """Register the actors on `broker` with the retry policy from settings."""
    s = runtime.settings
    documents_q, backfill_q = queue_names(s)
    broker.add_middleware(Bookkeeping(runtime.db), before=Retries)
    policy: dict[str, Any] = {"max_retries": s.max_retries, "min_backoff": s.min_backoff_ms,
                              "max_backoff": s.max_backoff_ms, "throws": (PermanentError,)}

    @dramatiq.actor(broker=broker, actor_name=SYNC_DOCUMENT, queue_name=documents_q, priority=0, **policy)
    def sync_document(site: str, source_id: str, event: str = "update", delivery_id: str | None = None) -> None:
        ref = DocRef(site, source_id)
        with runtime.db.connection() as conn, jobs.one_run_at_a_time(conn, ref):
            if not jobs.is_pending(conn, ref):
                # A run that started after this request already brought the document in step: a burst of
                # webhooks for one save (WordPress fires 3 or 4) costs one fetch and one embedding.
                log.info("document_coalesced", site=site, source_id=source_id)
                return
            outcome = runtime.pipeline().sync(ref, event)
            if outcome.started is not None:  # cleared before the lock goes, so a waiting run finds nothing to do
                jobs.succeeded(conn, ref, outcome.started, event)

    @dramatiq.actor(broker=broker, actor_name=SYNC_BATCH, queue_name=backfill_q, priority=10, **policy)
    def sync_batch(site: str, source_ids: list[str]) -> None:
        outcomes = runtime.pipeline().sync_batch(site, list(source_ids))
        retry = []
        with runtime.db.connection() as conn:
            for o in outcomes:
                if o.error is None and o.started is not None:
                    jobs.succeeded(conn, o.ref, o.started)
                elif isinstance(o.error, TransientError):
                    retry.append(o.ref)  # retried alone, with the documents queue's backoff
                elif o.error is not None:
                    jobs.failed(conn, o.ref, o.error, attempts=1, started=o.started or runtime.db.now())
            if retry:
                jobs.requested(conn, retry, "update")
        for ref in retry:
            sync_document.send(ref.site, ref.source_id, "update")

    return Actors(sync_document, sync_batch)
