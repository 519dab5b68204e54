"""`cmsrag migrate`, `status`, `failures` and `retry`: what an operator runs to set up, look and replay."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from services.cli.app import App
from services.embedder import jobs
from services.embedder.broker import queue_names
from shared.models import DocRef


def cmd_migrate(app: App, args: argparse.Namespace) -> int:
    applied, vtype = app.migrate(reset_embeddings=args.reset_embeddings)
    print(f"schema up to date ({len(applied)} migration(s) applied now); "
          f"embeddings: {app.embedder.model_id}, {app.embedder.dimensions} dims as {vtype}")
    return 0


def site_summary(app: App) -> list[dict[str, Any]]:
    with app.db.connection() as conn:
        rows = conn.execute("""
            SELECT s.site,
                   (SELECT count(*) FROM documents d WHERE d.site = s.site AND d.status = 'indexed'),
                   (SELECT count(*) FROM documents d WHERE d.site = s.site AND d.status = 'empty'),
                   (SELECT count(*) FROM documents d WHERE d.site = s.site AND d.status = 'removed'),
                   (SELECT coalesce(sum(chunk_count), 0) FROM documents d WHERE d.site = s.site),
                   (SELECT count(*) FROM pending p WHERE p.site = s.site),
                   (SELECT min(first_requested) FROM pending p WHERE p.site = s.site),
                   (SELECT count(*) FROM failures f WHERE f.site = s.site AND f.resolved_at IS NULL),
                   (SELECT max(indexed_at) FROM documents d WHERE d.site = s.site)
            FROM unnest(%s::text[]) AS s(site)""", ([s.name for s in app.settings.sites],)).fetchall()
    now = datetime.now(UTC)
    return [{"site": r[0], "documents": r[1], "empty": r[2], "removed": r[3], "chunks": int(r[4]), "pending": r[5],
             "oldest_pending_seconds": round((now - r[6]).total_seconds(), 1) if r[6] else None,
             "failures": r[7], "last_indexed": r[8].isoformat() if r[8] else None} for r in rows]


def print_site_summary(app: App, site: str) -> None:
    for s in site_summary(app):
        if s["site"] == site:
            print(f"  {s['documents']} documents indexed ({s['chunks']} chunks), {s['empty']} empty, "
                  f"{s['removed']} removed, {s['pending']} pending, {s['failures']} failed")


def queue_depths(app: App) -> dict[str, Any]:
    """Messages waiting in RabbitMQ per queue (ready, delayed, dead-lettered); empty in dev mode."""
    if app.dev_mode:
        return {}
    depths = {}
    for q in queue_names(app.settings):
        try:
            ready, delayed, dead = app.broker.get_queue_message_counts(q)  # type: ignore[attr-defined]
            depths[q] = {"ready": ready, "delayed": delayed, "dead": dead}
        except Exception as exc:  # a queue nobody declared yet, or the broker down: say so, don't fail status
            depths[q] = {"error": str(exc) or exc.__class__.__name__}
    return depths


def cmd_status(app: App, args: argparse.Namespace) -> int:
    summary: dict[str, Any] = {"sites": site_summary(app), "queues": queue_depths(app)}
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"{'site':<16}{'docs':>7}{'chunks':>9}{'empty':>7}{'removed':>9}{'pending':>9}{'failed':>8}  last indexed")
    for s in summary["sites"]:
        print(f"{s['site']:<16}{s['documents']:>7}{s['chunks']:>9}{s['empty']:>7}{s['removed']:>9}{s['pending']:>9}"
              f"{s['failures']:>8}  {s['last_indexed'] or '-'}")
    for q, d in summary["queues"].items():
        print(f"queue {q}: " + ", ".join(f"{k} {v}" for k, v in d.items()))
    if app.dev_mode:
        print("queue: in-memory (dev mode; RABBITMQ_URL not set)")
    return 0


def cmd_failures(app: App, args: argparse.Namespace) -> int:
    with app.db.connection() as conn:
        rows = jobs.open_failures(conn, args.site, args.limit)
    if args.json:
        print(json.dumps([{**r.__dict__, "failed_at": r.failed_at.isoformat()} for r in rows], indent=2))
        return 0
    if not rows:
        print("no open failures")
    for r in rows:
        kind = "transient" if r.retryable else "permanent"
        print(f"#{r.id} {r.site}/{r.source_id} [{r.stage}, {kind}, {r.attempts} attempt(s), "
              f"{r.failed_at:%Y-%m-%d %H:%M:%S}] {r.reason}")
    return 0


def cmd_retry(app: App, args: argparse.Namespace) -> int:
    """Replay failures: re-queue their documents (the failure row is resolved when a run succeeds)."""
    if not args.all and not args.ids:
        print("name failure ids (see `cmsrag failures`) or use --all")
        return 2
    with app.db.connection() as conn:
        rows = jobs.open_failures(conn, args.site, limit=100_000)
    chosen = [r for r in rows if args.all or r.id in args.ids]
    missing = set(args.ids) - {r.id for r in chosen}
    if missing:
        print(f"no open failure with id {', '.join(map(str, sorted(missing)))}")
        return 1
    from services.cli.indexing import dev_mode_worker, wait_until_done

    with dev_mode_worker(app):
        for r in chosen:
            app.queue.request(DocRef(r.site, r.source_id), "retry")
        if app.dev_mode:
            for site in {r.site for r in chosen}:
                wait_until_done(app, site, progress=False)
    print(f"re-queued {len(chosen)} document(s)")
    return 0

