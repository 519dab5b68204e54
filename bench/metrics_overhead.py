"""Metrics overhead: `POST /v1/search` latency with the Prometheus metrics on and off, in the same run.

Two copies of the query API run under gunicorn on the same database: one as in production (prometheus_client's
multiprocess mode, a `PROMETHEUS_MULTIPROC_DIR` of its own, as services/gunicorn_conf.py sets), one with
`CMSRAG_METRICS=off` (no request timing, no `/metrics`). One client sends sequential searches to both, in rounds
whose order alternates (on, off, off, on, …) so that drift in the machine's load falls on both alike; a thread
scrapes the metrics server's `/metrics` every few seconds, as Prometheus would, so the cost of the scrapes is in
the figures too. Goal: p50 and p99 with metrics at most 3 % above without.

Beside the ratio, the run prints its own noise floor: each server's even rounds against its odd rounds (the larger).
An on/off difference smaller than that spread is not a measurement of the metrics. So the run also times the
metric hooks alone, where the noise is small: a Flask app with one trivial route, with and without
`metrics.instrument`, called through Flask's test client in a subprocess in multiprocess mode (as under gunicorn);
the difference per request is what the metrics add to every request.

The fake embedder is the default: the smaller the request, the larger the metrics' share of it (the local model
adds ~10 ms of embedding per query; `--embedder local` measures that case).

    python -m bench.metrics_overhead [--requests 3000] [--round 10] [--scrape-every 5] [--embedder fake|local]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import requests

from bench.common import drop_database, fresh_database, gunicorn, machine, row, sample_site
from bench.search import percentile
from services.cli.app import App
from services.embedder.pipeline import Pipeline
from shared import logs
from shared.settings import Settings
from shared.sources import make_source

GOAL = 1.03  # p50 and p99 with metrics / without
QUERIES = ("default parameter values", "list comprehension", "read a file line by line", "break in a loop",
           "what is a dictionary", "keyword arguments", "virtual environments", "exceptions and try",
           "string formatting", "classes and inheritance", "modules and packages", "the for statement")
WIDTHS = (40, 10, 10, 10, 10)


def index_sample(env: dict[str, str]) -> int:
    """The sample site (the Python tutorial as WordPress exported it) indexed into the fresh database."""
    settings = Settings.from_env(env)
    app = App(settings)
    try:
        app.migrate()
        ids = [d.source_id for d in make_source(settings.site("sample"), settings).list_documents()]
        Pipeline(settings, app.db, app.embedder).sync_batch("sample", ids)
        return len(ids)
    finally:
        app.close()


@contextmanager
def scraping(base: str, every: float) -> Iterator[list[float]]:
    """GET `base`/metrics every `every` seconds until the block ends; yields the scrapes' durations."""
    durations: list[float] = []
    stop = threading.Event()

    def loop() -> None:
        with requests.Session() as s:
            while not stop.wait(every):
                t0 = time.perf_counter()
                s.get(f"{base}/metrics", timeout=10).raise_for_status()
                durations.append(time.perf_counter() - t0)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield durations
    finally:
        stop.set()
        thread.join(timeout=15)


def hook_cost(calls: int, blocks: int = 10) -> float:
    """Seconds the metric hooks add to one request: a trivial route with and without `instrument`, alternating
    blocks, the median per-call difference. Run in a process whose prometheus_client is in multiprocess mode."""
    import statistics

    from flask import Flask

    from shared import metrics

    def client(instrumented: bool) -> Any:
        app = Flask(f"bench-{instrumented}")
        app.add_url_rule("/v1/ping", "ping", lambda: "pong")
        if instrumented:
            metrics.instrument(app, "api")
        return app.test_client()

    clients = {True: client(True), False: client(False)}
    per_call: dict[bool, list[float]] = {True: [], False: []}
    for b in range(blocks):
        for instrumented in ((True, False) if b % 2 == 0 else (False, True)):
            c, t0 = clients[instrumented], time.perf_counter()
            for _ in range(calls // blocks):
                c.get("/v1/ping")
            per_call[instrumented].append((time.perf_counter() - t0) / (calls // blocks))
    return statistics.median(per_call[True]) - statistics.median(per_call[False])


def hook_cost_multiprocess(calls: int) -> float:
    """`hook_cost` in a subprocess with `PROMETHEUS_MULTIPROC_DIR` set before prometheus_client loads."""
    import subprocess
    import sys

    with tempfile.TemporaryDirectory(prefix="cmsrag-bench-hooks-") as directory:
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": directory, "CMSRAG_METRICS": "on"}
        out = subprocess.run([sys.executable, "-c", f"from bench.metrics_overhead import hook_cost; "
                              f"print(hook_cost({calls}))"], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def searches(session: requests.Session, base: str, n: int, start: int) -> list[float]:
    lat = []
    for i in range(start, start + n):
        t0 = time.perf_counter()
        r = session.post(f"{base}/v1/search", json={"query": QUERIES[i % len(QUERIES)], "k": 6}, timeout=30)
        lat.append(time.perf_counter() - t0)
        r.raise_for_status()
    return lat


def summary(lat: list[float]) -> dict[str, float]:
    return {"p50_ms": round(percentile(lat, 50) * 1000, 3), "p90_ms": round(percentile(lat, 90) * 1000, 3),
            "p99_ms": round(percentile(lat, 99) * 1000, 3), "mean_ms": round(sum(lat) / len(lat) * 1000, 3)}


def verdict(ratio: float, noise: float) -> str:
    """Goal met, or missed by more than this run's own A/A spread, or missed within it (then not measured)."""
    if ratio <= GOAL:
        return "goal met"
    if ratio - 1 > noise:
        return "goal NOT met"
    return "above the goal but within the noise floor: not resolved by this run"


def report(lat: dict[str, list[float]], halves: dict[str, list[list[float]]]) -> dict[str, Any]:
    """The table; the noise floor is the larger A/A spread: each server's even rounds against its odd rounds."""
    on, off, n = summary(lat["on"]), summary(lat["off"]), len(lat["on"])
    split = {m: (summary(halves[m][0]), summary(halves[m][1])) for m in halves}
    print(row("", "p50 ms", "p90 ms", "p99 ms", "mean ms", widths=WIDTHS))
    for label, fig in ((f"metrics on  ({n} requests)", on), (f"metrics off ({n} requests, baseline)", off)):
        print(row(label, *(fig[k] for k in ("p50_ms", "p90_ms", "p99_ms", "mean_ms")), widths=WIDTHS))
    ratio = {k: round(on[k] / off[k], 3) for k in on}
    noise = {k: round(max(abs(a[k] / b[k] - 1) for a, b in split.values()), 3) for k in on}
    print(row(f"on / off (goal ≤ {GOAL})", *(ratio[k] for k in ("p50_ms", "p90_ms", "p99_ms", "mean_ms")),
              widths=WIDTHS))
    print(row("noise floor: |even / odd rounds - 1|", *(noise[k] for k in ("p50_ms", "p90_ms", "p99_ms", "mean_ms")),
              widths=WIDTHS))
    for k in ("p50_ms", "p99_ms"):
        print(f"{k[:3]}: {100 * (ratio[k] - 1):+.1f} % with metrics, noise floor {100 * noise[k]:.1f} % "
              f"-> {verdict(ratio[k], noise[k])}")
    return {"on": on, "off": off} | {"ratio_" + k: v for k, v in ratio.items()} | {
        "noise_" + k: v for k, v in noise.items()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=3000, help="searches per server, over all rounds")
    p.add_argument("--round", type=int, default=10, help="searches per server per round; rounds alternate which "
                   "server goes first, and short rounds put both through the same moments of the machine's load")
    p.add_argument("--scrape-every", type=float, default=5.0, help="seconds between scrapes of /metrics (0: none)")
    p.add_argument("--embedder", choices=("fake", "local"), default="fake")
    p.add_argument("--threads", type=int, default=4, help="gunicorn threads (1 worker per server)")
    p.add_argument("--hook-calls", type=int, default=10000, help="calls of the trivial route, each way")
    args = p.parse_args()
    logs.configure("WARNING")
    rounds = max(2, args.requests // args.round)
    db_url = fresh_database("metrics_overhead")
    site = sample_site()
    env = {**os.environ, "DATABASE_URL": db_url, "CMSRAG_LOG_LEVEL": "WARNING", "CMSRAG_EMBEDDER": args.embedder,
           "CMSRAG_SITES": json.dumps([{"name": "sample", "kind": "wxr", "path": str(site.path),
                                        "url": "https://python-tutorial.example/"}]),
           "CMSRAG_RATE_PUBLIC": "1000000/min,burst=100000", "CMSRAG_ANSWER_CACHE_TTL": "0", "HF_HUB_OFFLINE": "1"}
    for name in ("RABBITMQ_URL", "PROMETHEUS_MULTIPROC_DIR", "CMSRAG_METRICS"):
        env.pop(name, None)
    try:
        documents = index_sample(env)
        with ExitStack() as stack:
            multiproc = stack.enter_context(tempfile.TemporaryDirectory(prefix="cmsrag-bench-metrics-"))
            servers = {
                "on": stack.enter_context(gunicorn("services.api.wsgi:app", {**env, "PROMETHEUS_MULTIPROC_DIR":
                                                   multiproc}, workers=1, threads=args.threads, start_timeout=120)),
                "off": stack.enter_context(gunicorn("services.api.wsgi:app", {**env, "CMSRAG_METRICS": "off"},
                                                    workers=1, threads=args.threads, start_timeout=120)),
            }
            assert requests.get(f"{servers['on']}/metrics", timeout=10).ok
            assert requests.get(f"{servers['off']}/metrics", timeout=10).status_code == 404, "metrics are off"
            print(f"# metrics overhead — {machine()} — {time.strftime('%Y-%m-%d %H:%M')} — "
                  f"load average {os.getloadavg()[0]:.2f}")
            scrapes = f"/metrics scraped every {args.scrape_every:g} s" if args.scrape_every else "no scrapes"
            print(f"sample site: {documents} documents, embedder {args.embedder}; two API servers under gunicorn "
                  f"(1 worker × {args.threads} threads each), one client, sequential POST /v1/search; "
                  f"{rounds} alternating rounds of {args.round} per server; {scrapes}")
            session = requests.Session()
            for base in servers.values():
                searches(session, base, 100, 0)  # warm up: connection pool, plans, caches
            lat: dict[str, list[float]] = {"on": [], "off": []}
            halves: dict[str, list[list[float]]] = {"on": [[], []], "off": [[], []]}
            scraper = (stack.enter_context(scraping(servers["on"], args.scrape_every)) if args.scrape_every
                       else [])
            t0 = time.perf_counter()
            for r in range(rounds):
                for mode in (("on", "off") if r % 2 == 0 else ("off", "on")):
                    got = searches(session, servers[mode], args.round, r * args.round)
                    lat[mode] += got
                    halves[mode][r % 2] += got
            elapsed = time.perf_counter() - t0
        result = report(lat, halves)
        if scraper:
            print(f"{len(scraper)} scrapes of the metrics server's /metrics, p50 "
                  f"{percentile(scraper, 50) * 1000:.1f} ms")
        hooks = hook_cost_multiprocess(args.hook_calls)
        share = hooks / (result["off"]["p50_ms"] / 1000)
        print(f"the metric hooks alone (multiprocess mode, {args.hook_calls} calls of a trivial route, with and "
              f"without): {hooks * 1e6:.0f} µs per request = {100 * share:.1f} % of the p50 search without metrics")
        result |= {"hook_us": round(hooks * 1e6, 1), "hook_share_of_p50": round(share, 4)}
        print(f"measured in {elapsed:.0f} s; load average at the end {os.getloadavg()[0]:.2f} (the 2 cores are "
              "shared with other work, whose interference is in these figures)")
        print(json.dumps({"bench": "metrics_overhead", "machine": machine(), "embedder": args.embedder,
                          "requests": len(lat["on"]), "round": args.round, "scrape_every": args.scrape_every,
                          "goal": GOAL, **result}))
    finally:
        drop_database(db_url)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
