"""`cmsrag index`, `cmsrag backfill` and `cmsrag worker`: putting documents on the queue, and working it off.

Without RabbitMQ (dev mode) the queue lives in this process, so `index` and `backfill` run an in-process
worker and wait until the work is done; with RabbitMQ they only enqueue unless asked to `--wait`.
"""

from __future__ import annotations

import argparse
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import dramatiq
from tqdm import tqdm

from services.cli.app import App
from shared.errors import CmsragError
from shared.logs import get_logger
from shared.models import DocRef

log = get_logger(__name__)


@contextmanager
def in_process_worker(app: App, threads: int | None = None) -> Iterator[dramatiq.Worker]:
    """Run the actors in this process for the duration of the block (dev mode, demo, tests)."""
    app.actors  # noqa: B018  # declare actors (and queues) before the worker starts consuming
    worker = dramatiq.Worker(app.broker, worker_threads=threads or app.settings.worker_threads, worker_timeout=100)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop(timeout=30_000)


def pending_count(app: App, site: str, source_id: str | None = None) -> int:
    with app.db.connection() as conn:
        row = conn.execute("SELECT count(*) FROM pending WHERE site = %s AND (%s::text IS NULL OR source_id = %s)",
                           (site, source_id, source_id)).fetchone()
    return int(row[0]) if row else 0


def wait_until_done(app: App, site: str, source_id: str | None = None, *, total: int | None = None,
                    timeout: float | None = None, progress: bool = True) -> bool:
    """Poll `pending` until this site's (or document's) work is done; True if done before the timeout."""
    deadline = None if timeout is None else time.monotonic() + timeout
    bar = tqdm(total=total, desc="indexing", unit="doc", disable=not progress or total is None)
    done_before = 0
    try:
        while True:
            left = pending_count(app, site, source_id)
            if total is not None:
                bar.update(max(0, total - left - done_before))
                done_before = total - left
            if left == 0:
                return True
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.2)
    finally:
        bar.close()


def cmd_index(app: App, args: argparse.Namespace) -> int:
    app.settings.site(args.site)  # unknown site: clear error before anything is queued
    ref = DocRef(args.site, args.doc_id)
    app.check_index()
    if app.dev_mode:
        with in_process_worker(app):
            message_id = app.queue.request(ref, args.event)
            wait_until_done(app, ref.site, ref.source_id, timeout=args.timeout, progress=False)
    else:
        message_id = app.queue.request(ref, args.event)
        if args.wait and not wait_until_done(app, ref.site, ref.source_id, timeout=args.timeout, progress=False):
            print(f"queued {ref.site}/{ref.source_id} (message {message_id}); still pending after {args.timeout}s")
            return 1
    print(f"queued {ref.site}/{ref.source_id} (message {message_id})")
    return _report_document(app, ref)


def _report_document(app: App, ref: DocRef) -> int:
    with app.db.connection() as conn:
        doc = conn.execute("SELECT status, chunk_count, title FROM documents WHERE site = %s AND source_id = %s",
                           (ref.site, ref.source_id)).fetchone()
        fail = conn.execute("SELECT stage, reason FROM failures WHERE site = %s AND source_id = %s "
                            "AND resolved_at IS NULL", (ref.site, ref.source_id)).fetchone()
    if fail:
        print(f"failed at {fail[0]}: {fail[1]}")
        return 1
    if doc:
        print(f"{doc[0]}: {doc[2] or ''} ({doc[1]} chunks)")
    return 0


def cmd_backfill(app: App, args: argparse.Namespace) -> int:
    site = app.settings.site(args.site)
    from shared.sources import make_source

    source = make_source(site, app.settings)
    types = tuple(args.type.split(",")) if args.type else None
    app.check_index()
    t0 = time.monotonic()
    ids = (d.source_id for d in source.list_documents(since=args.since, types=types))
    with in_process_worker(app) if app.dev_mode else _nothing():
        queued = 0
        with tqdm(desc=f"queueing {site.name}", unit="doc", disable=args.quiet) as bar:
            for n in app.queue.request_many(site.name, ids):
                queued += n
                bar.update(n)
        if app.dev_mode or args.wait:
            wait_until_done(app, site.name, total=queued, timeout=args.timeout, progress=not args.quiet)
    elapsed = time.monotonic() - t0
    print(f"backfill {site.name}: {queued} documents queued in {elapsed:.1f}s")
    if app.dev_mode or args.wait:
        from services.cli.admin import print_site_summary

        print_site_summary(app, site.name)
    return 0


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def cmd_worker(app: App, args: argparse.Namespace) -> int:
    if app.dev_mode:
        raise CmsragError("`cmsrag worker` needs RabbitMQ: set RABBITMQ_URL (e.g. amqp://guest:guest@127.0.0.1:5672). "
                          "Without it, `cmsrag index`/`backfill`/`demo` work in-process.")
    app.check_index()
    app.runtime.pipeline()  # load the model before taking messages, so the first one is not slow
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    threads = args.threads or app.settings.worker_threads
    with in_process_worker(app, threads):
        log.info("worker_started", threads=threads, queues=sorted(app.broker.get_declared_queues()))
        stop.wait()
        log.info("worker_stopping", detail="finishing in-flight messages; unfinished ones are requeued")
    log.info("worker_stopped")
    return 0


def cmd_receiver(app: App, args: argparse.Namespace) -> int:
    """Serve POST /webhooks/<kind>/<site> with Werkzeug's threaded server (`gunicorn services.ingest.wsgi:app`
    in production). In dev mode the in-process worker runs alongside, so events are indexed too."""
    from werkzeug.serving import make_server

    app.check_index()
    server = make_server(args.host, args.port, app.receiver(), threaded=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    log.info("receiver_started", url=f"http://{args.host}:{server.server_port}/webhooks/<kind>/<site>",
             sites=[s.name for s in app.settings.sites])
    with in_process_worker(app) if app.dev_mode else _nothing():
        stop.wait()
    server.shutdown()
    log.info("receiver_stopped")
    return 0
