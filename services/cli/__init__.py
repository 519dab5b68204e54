"""The `cmsrag` command: one entry point, a subcommand per job.

Exit codes: 0 done, 1 the work failed (message says why), 2 bad usage or configuration, 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import psycopg

from shared import logs
from shared.errors import CmsragError, ConfigError
from shared.settings import Settings


def _date(value: str) -> datetime:
    try:
        d = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date (use YYYY-MM-DD or an ISO 8601 time)") from None
    return d if d.tzinfo else d.replace(tzinfo=UTC)


def _duration(value: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    number, unit = value[:-1], value[-1:]
    if unit not in units or not number.replace(".", "", 1).isdigit() or float(number) <= 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a duration such as 30s, 10m or 1h")
    return float(number) * units[unit]


def _positive(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{value!r} must be a whole number of at least 1")
    return int(value)


def _port(value: str) -> int:
    if not value.isdigit() or int(value) > 65535:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number (0..65535)")
    return int(value)


def build_parser() -> argparse.ArgumentParser:
    from services.cli import admin, ask, demo, evaluate, indexing, keys, query

    p = argparse.ArgumentParser(prog="cmsrag", description="Chat with a website's own content.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def cmd(name: str, fn: Callable[..., int], help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        sp.set_defaults(fn=fn)
        return sp

    m = cmd("migrate", admin.cmd_migrate, "create or upgrade the database schema (safe to re-run)")
    m.add_argument("--reset-embeddings", action="store_true",
                   help="drop all vectors when the embedding model changed (then backfill every site)")
    w = cmd("worker", indexing.cmd_worker, "run the embedding workers (needs RABBITMQ_URL)")
    w.add_argument("--threads", type=_positive, help="worker threads (default CMSRAG_WORKER_THREADS)")
    w.add_argument("--metrics-port", type=_port, metavar="PORT",
                   help="serve Prometheus /metrics on this port, 0 for none (default CMSRAG_METRICS_PORT, 9191)")
    i = cmd("index", indexing.cmd_index, "queue one document for (re)indexing")
    i.add_argument("site")
    i.add_argument("doc_id")
    i.add_argument("--event", default="update", choices=["update", "delete"], help="delete removes without fetching")
    i.add_argument("--wait", action="store_true", help="with RabbitMQ: wait until a worker has processed it")
    i.add_argument("--timeout", type=float, default=120.0)
    b = cmd("backfill", indexing.cmd_backfill, "queue every published document of a site")
    b.add_argument("site")
    b.add_argument("--since", type=_date, help="only documents modified since this date")
    b.add_argument("--type", help="comma-separated post types (WordPress REST bases such as posts,pages)")
    b.add_argument("--force", action="store_true", help="queue every document, not only new and changed ones")
    b.add_argument("--wait", action="store_true", help="with RabbitMQ: wait until everything is processed")
    b.add_argument("--timeout", type=float, default=None)
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    rcn = cmd("reconcile", indexing.cmd_reconcile, "compare a site's CMS with the index and queue what differs")
    rcn.add_argument("site", help="a site name, or 'all'")
    rcn.add_argument("--every", type=_duration, help="run forever at this interval, e.g. 10m, 30s, 1h")
    rcn.add_argument("--dry-run", action="store_true", help="report the drift, queue nothing")
    rcn.add_argument("--json", action="store_true")
    s = cmd("search", query.cmd_search, "hybrid search from the command line")
    s.add_argument("query", nargs="+")
    s.add_argument("-k", type=_positive, default=5)
    s.add_argument("--site")
    s.add_argument("--mode", choices=["hybrid", "vector", "fulltext"], default="hybrid")
    s.add_argument("--json", action="store_true")
    a = cmd("ask", ask.cmd_ask, "answer a question from the indexed content, with citations")
    a.add_argument("question", nargs="+")
    a.add_argument("--site")
    a.add_argument("--stream", action="store_true", help="print the answer as it is produced")
    a.add_argument("--json", action="store_true")
    api = cmd("api", query.cmd_api, "serve the query API and chat widget (dev server; gunicorn in production)")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=_positive, default=8000)
    st = cmd("status", admin.cmd_status, "documents, chunks, pending work and failures per site")
    st.add_argument("--json", action="store_true")
    f = cmd("failures", admin.cmd_failures, "list documents the pipeline gave up on")
    f.add_argument("--site")
    f.add_argument("--limit", type=_positive, default=50)
    f.add_argument("--json", action="store_true")
    r = cmd("retry", admin.cmd_retry, "re-queue failed documents")
    r.add_argument("ids", nargs="*", type=_positive)
    r.add_argument("--all", action="store_true")
    r.add_argument("--site")
    rc = cmd("receiver", indexing.cmd_receiver, "serve the webhook receiver (dev server; gunicorn in production)")
    rc.add_argument("--host", default="127.0.0.1")
    rc.add_argument("--port", type=_positive, default=8090)
    d = cmd("demo", demo.cmd_demo, "index the bundled sample site and answer a question (embedded default)")
    d.add_argument("--no-serve", action="store_true", help="stop after the sample answer (smoke tests)")
    d.add_argument("--question")
    d.add_argument("--host", default="127.0.0.1")
    d.add_argument("--port", type=_positive, default=8000)
    d.add_argument("--timeout", type=float, default=900.0)
    keys.add_arguments(cmd("keys", keys.cmd_keys, "create, list and revoke API keys for the query API"))
    evaluate.add_arguments(cmd("eval", evaluate.cmd_eval, "measure retrieval and answer quality on a question set"))
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"cmsrag: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format)
    from services.cli.app import App

    app = App(settings)
    try:
        return int(args.fn(app, args))
    except ConfigError as exc:
        print(f"cmsrag: {exc}", file=sys.stderr)
        return 2
    except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn) as exc:
        # A database never migrated, or migrated by an older cmsrag: the fix is the same, whatever the command.
        print(f"cmsrag {args.command}: the database's cmsrag schema is missing or out of date "
              f"({exc.diag.message_primary}): run `cmsrag migrate`", file=sys.stderr)
        return 1
    except CmsragError as exc:
        print(f"cmsrag {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        app.close()
