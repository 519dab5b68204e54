"""`cmsrag demo`: the newcomer's first run — embedded Postgres, the sample site indexed, a question answered, the
chat widget served.

No Docker, no API keys: the embedded PostgreSQL + pgvector, the in-memory queue (unless `RABBITMQ_URL` is set)
with an in-process worker, and the local embedding model.
"""

from __future__ import annotations

import argparse
import time

from services.cli.app import App
from services.cli.ask import cmd_ask
from services.cli.indexing import in_process_worker, wait_until_done
from shared.errors import CmsragError
from shared.sources import make_source

SAMPLE_QUESTION = "How do I give a function parameter a default value?"


def cmd_demo(app: App, args: argparse.Namespace) -> int:
    s = app.settings
    site = next((x for x in s.sites if x.name == "sample"), None) or (s.sites[0] if s.sites else None)
    if site is None:
        raise CmsragError("no site is configured for the demo")
    where = "DATABASE_URL" if s.database_url else f"embedded PostgreSQL in {s.data_dir / 'pg'}"
    print(f"cmsrag demo: database = {where}; queue = {'RabbitMQ' if s.rabbitmq_url else 'in-memory (dev mode)'}; "
          f"embedder = {s.embedder}:{s.embed_model}")
    t0 = time.monotonic()
    applied, _ = app.migrate()
    print(f"schema ready ({len(applied)} migration(s) applied) in {time.monotonic() - t0:.1f}s")
    t1 = time.monotonic()
    listed = [d.source_id for d in make_source(site, s).list_documents()]
    with in_process_worker(app):
        queued = sum(app.queue.request_many(site.name, listed))
        wait_until_done(app, site.name, total=queued, timeout=args.timeout, progress=True)
    print(f"indexed site {site.name!r}: {queued} documents in {time.monotonic() - t1:.1f}s")
    from services.cli.admin import print_site_summary

    print_site_summary(app, site.name)
    question = args.question or SAMPLE_QUESTION
    print(f"\nQ: {question}\n")
    cmd_ask(app, argparse.Namespace(question=[question], site=site.name, stream=True, json=False))
    if args.no_serve:
        return 0
    from services.api.app import serve

    serve(app, host=args.host, port=args.port)
    return 0
