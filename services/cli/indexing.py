"""`cmsrag index`, `cmsrag backfill` and `cmsrag worker`: putting documents on the queue, and working it off.

Without RabbitMQ (dev mode) the queue lives in this process, so `index` and `backfill` run an in-process
worker and wait until the work is done; with RabbitMQ they only enqueue unless asked to `--wait`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

import dramatiq
from tqdm import tqdm

from services.cli.app import App
from services.ingest.reconcile import Plan, indexed_documents, plan, prune_deliveries, stale_pending
from shared.errors import CmsragError
from shared.logs import get_logger
from shared.models import DocRef, ListedDocument

log = get_logger(__name__)
STUCK_AFTER = timedelta(minutes=10)  # well past the longest retry backoff a live message can be waiting in


@contextmanager
def in_process_worker(app: App, threads: int | None = None) -> Iterator[dramatiq.Worker]:
    """Run the actors in this process for the duration of the block (dev mode, demo, tests)."""
    app.actors  # noqa: B018  # declare actors (and queues) before the worker starts consuming
    worker = dramatiq.Worker(app.broker, worker_threads=threads or app.settings.worker_threads, worker_timeout=100)
    worker.start()
    try:
        yield worker
    finally:
        # Messages still running after the drain time are never acked, so RabbitMQ redelivers them; keep it
        # below the orchestrator's grace period (compose stop_grace_period, terminationGracePeriodSeconds).
        worker.stop(timeout=app.settings.worker_drain_seconds * 1000)


def dev_mode_worker(app: App, *, when: bool = True) -> contextlib.AbstractContextManager[object]:
    """In dev mode the queue lives in this process, so the command must work it off itself; with RabbitMQ the
    workers are elsewhere and this does nothing."""
    return in_process_worker(app) if app.dev_mode and when else contextlib.nullcontext()


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


def list_site(app: App, site_name: str, since: datetime | None = None, types: tuple[str, ...] | None = None,
              quiet: bool = False) -> list[ListedDocument]:
    """Every published document of the site, paging through its CMS, with a progress bar."""
    from shared.sources import make_source

    source = make_source(app.settings.site(site_name), app.settings)
    with tqdm(desc=f"listing {site_name}", unit="doc", disable=quiet) as bar:
        listed = []
        for doc in source.list_documents(since=since, types=types):
            listed.append(doc)
            bar.update(1)
    return listed


def cmd_backfill(app: App, args: argparse.Namespace) -> int:
    """Queue every published document that is new or changed since it was indexed (all with --force).

    Safe to interrupt and run again: what was indexed meanwhile is skipped, so a second run resumes."""
    site = app.settings.site(args.site)
    types = tuple(args.type.split(",")) if args.type else None
    app.check_index()
    t0 = time.monotonic()
    listed = list_site(app, site.name, args.since, types, args.quiet)
    with app.db.connection() as conn:
        todo = plan(listed, indexed_documents(conn, site.name), force=args.force)
    ids = todo.new + todo.changed
    with dev_mode_worker(app):
        queued = 0
        with tqdm(total=len(ids), desc=f"queueing {site.name}", unit="doc", disable=args.quiet) as bar:
            for n in app.queue.request_many(site.name, ids):
                queued += n
                bar.update(n)
        if app.dev_mode or args.wait:
            wait_until_done(app, site.name, total=queued, timeout=args.timeout, progress=not args.quiet)
    print(f"backfill {site.name}: {todo.listed} listed, {len(todo.new)} new, {len(todo.changed)} changed, "
          f"{todo.unchanged} unchanged (skipped); {queued} queued in {time.monotonic() - t0:.1f}s")
    if app.dev_mode or args.wait:
        from services.cli.admin import print_site_summary

        print_site_summary(app, site.name)
    return 0


def cmd_reconcile(app: App, args: argparse.Namespace) -> int:
    """Bring the index in step with the CMS: queue new, changed and gone documents; re-send stuck requests."""
    names = [s.name for s in app.settings.sites] if args.site == "all" else [app.settings.site(args.site).name]
    app.check_index()
    stop = threading.Event()
    if args.every:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    with dev_mode_worker(app, when=not args.dry_run):
        while True:
            for name in names:
                reconcile_site(app, name, dry_run=args.dry_run, as_json=args.json)
            if not args.dry_run:
                housekeeping(app)
            if app.dev_mode and not args.dry_run:
                for name in names:
                    wait_until_done(app, name, progress=False)
            if not args.every or stop.wait(args.every):
                break
    return 0


def housekeeping(app: App) -> None:
    """Drop the query service's expired state: full rate-limit buckets and answers past their lifetime."""
    from services.api.cache import AnswerCache
    from services.api.ratelimit import prune

    with app.db.connection() as conn:
        buckets = prune(conn)
        answers = AnswerCache(app.db, app.settings.query.answer_cache_ttl).prune(conn)
    log.info("housekeeping_done", rate_limit_buckets=buckets, expired_answers=answers)


def reconcile_site(app: App, name: str, *, dry_run: bool, as_json: bool) -> Plan:
    t0 = time.monotonic()
    listed = list_site(app, name, quiet=True)
    with app.db.connection() as conn:
        todo = plan(listed, indexed_documents(conn, name))
        stuck = stale_pending(conn, name, STUCK_AFTER)
        pruned = 0 if dry_run else prune_deliveries(conn)
    if not dry_run:
        sum(app.queue.request_many(name, todo.new + todo.changed))
        for source_id in todo.gone:
            app.queue.request(DocRef(name, source_id), "update")  # the worker removes it if the CMS confirms
        for ref, event in stuck:
            app.queue.publish(ref, event)
    report = {"site": name, "listed": todo.listed, "new": len(todo.new), "changed": len(todo.changed),
              "gone": len(todo.gone), "unchanged": todo.unchanged, "stuck_requests": len(stuck),
              "pruned_deliveries": pruned, "drift": todo.drift, "dry_run": dry_run,
              "seconds": round(time.monotonic() - t0, 2)}
    log.info("reconcile_done", **report)
    if as_json:
        print(json.dumps(report))
    else:
        verb = "would queue" if dry_run else "queued"
        print(f"reconcile {name}: {todo.listed} listed; drift {todo.drift} ({len(todo.new)} new, "
              f"{len(todo.changed)} changed, {len(todo.gone)} gone) {verb}; {len(stuck)} stuck request(s) "
              f"{'found' if dry_run else 're-sent'}")
    return todo


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
    port = app.settings.metrics_port if args.metrics_port is None else args.metrics_port
    with metrics_server(app, port), in_process_worker(app, threads):
        log.info("worker_started", threads=threads, queues=sorted(app.broker.get_declared_queues()),
                 metrics_port=port or None)
        stop.wait()
        log.info("worker_stopping", detail="finishing in-flight messages; unfinished ones are requeued")
    log.info("worker_stopped")
    return 0


@contextmanager
def metrics_server(app: App, port: int) -> Iterator[None]:
    """The worker's /metrics on `port` (none for 0): its own counters plus the backlog read at scrape time."""
    if not port:
        yield
        return
    from services.embedder.backlog import Backlog
    from shared import metrics

    backlog = Backlog(app.settings, app.db)
    try:
        server = metrics.serve(port, [backlog])
    except OSError as exc:
        raise CmsragError(f"cannot serve metrics on port {port}: {exc.strerror or exc}; choose another with "
                          "--metrics-port or CMSRAG_METRICS_PORT (0 turns the metrics port off)") from exc
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        backlog.close()


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
    with dev_mode_worker(app):
        stop.wait()
    server.shutdown()
    log.info("receiver_stopped")
    return 0
