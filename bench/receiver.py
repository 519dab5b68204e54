"""Receiver benchmark: signed webhooks accepted per second (RabbitMQ publisher confirms on) and their latency.

The receiver runs under gunicorn as in production (`services.ingest.wsgi:app`); a client with N threads sends
distinct signed events. Beside it, in the same run and on the same server, `GET /healthz`: the ceiling of the
HTTP stack itself, so the figure that matters is the share of it left after verifying, recording and publishing.

    python -m bench.receiver [--requests 2000] [--concurrency 16] [--workers 2] [--threads 4]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pika
import requests

from bench.common import drop_database, fresh_database, gunicorn, machine, rabbitmq_url
from services.cli.app import App
from shared import logs
from shared.settings import Settings
from shared.signing import sign

SECRET = "bench-receiver-secret-0123456789"


def fire(url: str, n: int, concurrency: int, make: object) -> tuple[float, list[float], int]:
    """Send n requests; (elapsed, latencies, errors)."""
    session_per_thread: dict[int, requests.Session] = {}

    def one(i: int) -> tuple[float, bool]:
        import threading

        s = session_per_thread.setdefault(threading.get_ident(), requests.Session())
        method, kwargs = make(i)  # type: ignore[operator]
        t0 = time.perf_counter()
        r = s.request(method, url, timeout=30, **kwargs)
        return time.perf_counter() - t0, r.status_code < 300

    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(one, range(n)))
    return time.perf_counter() - t0, [r[0] for r in results], sum(not ok for _, ok in results)


def report(label: str, n: int, elapsed: float, lat: list[float], errors: int) -> float:
    lat = sorted(lat)
    rate = n / elapsed
    print(f"{label:<44}{rate:>10.0f}/s   p50 {statistics.median(lat) * 1000:6.1f} ms   "
          f"p99 {lat[int(0.99 * (len(lat) - 1))] * 1000:6.1f} ms   errors {errors}")
    return rate


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=4)
    args = p.parse_args()
    logs.configure("WARNING")
    rabbit = rabbitmq_url()
    if not rabbit:
        print("needs RabbitMQ")
        return 1
    db_url = fresh_database("receiver")
    prefix = f"benchrx{uuid.uuid4().hex[:6]}"
    sites = [{"name": "blog", "kind": "wordpress", "url": "http://127.0.0.1:9", "webhook_secret": SECRET}]
    env = {**os.environ, "DATABASE_URL": db_url, "RABBITMQ_URL": rabbit, "CMSRAG_SITES": json.dumps(sites),
           "CMSRAG_QUEUE_PREFIX": prefix, "CMSRAG_EMBEDDER": "fake", "CMSRAG_LOG_LEVEL": "WARNING"}
    settings = Settings.from_env(env)
    App(settings).migrate()
    try:
        with gunicorn("services.ingest.wsgi:app", env, workers=args.workers, threads=args.threads) as base:
            def webhook(i: int) -> tuple[str, dict]:
                body = json.dumps({"event": "updated", "id": f"posts:{i + 1}"}).encode()
                return "POST", {"data": body, "headers": {"Content-Type": "application/json",
                                                          **sign([SECRET], f"wh_{uuid.uuid4().hex}", body)}}

            print(f"# receiver — {machine()} — {time.strftime('%Y-%m-%d %H:%M')}")
            print(f"gunicorn {args.workers} workers × {args.threads} threads; client {args.concurrency} threads; "
                  f"{args.requests} requests each")
            fire(f"{base}/healthz", 200, args.concurrency, lambda i: ("GET", {}))  # warm up
            ceiling = report("GET /healthz (HTTP stack ceiling)", args.requests,
                             *fire(f"{base}/healthz", args.requests, args.concurrency, lambda i: ("GET", {})))
            rate = report("POST signed webhook (confirms on)", args.requests,
                          *fire(f"{base}/webhooks/wordpress/blog", args.requests, args.concurrency, webhook))
            print(f"webhooks at {100 * rate / ceiling:.0f} % of the HTTP ceiling; every 202 was recorded in Postgres "
                  f"and confirmed by RabbitMQ")
            count = pika.BlockingConnection(pika.URLParameters(rabbit)).channel().queue_declare(
                f"{prefix}.documents", passive=True).method.message_count
            print(f"messages in RabbitMQ afterwards: {count} (expected {args.requests})")
    finally:
        from tests.conftest import delete_queues

        delete_queues(rabbit, prefix)
        drop_database(db_url)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
