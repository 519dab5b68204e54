"""Search benchmark: `POST /v1/search` latency and throughput at 10k and 100k chunks, and HNSW recall@10.

For each corpus size, in the same run and on the same database:
1. Latency (sequential requests) and req/s (concurrent clients) of `POST /v1/search` under gunicorn with the
   local model embedding each query inside the API, beside its two parts measured alone: the query embedding
   (the same model in this process) and the search SQL (`services.api.search.search` on a direct connection
   with precomputed query vectors). Goals at 100k: p50 ≤ 15 ms, p99 ≤ 50 ms, ≥ 150 req/s.
2. Recall@10 of the app's vector search against the exact search (the same query with index scans off), at
   ef_search 40, 100 (the app's) and 200, without and with a site filter (goal ≥ 0.98); beside it, whether the
   planner actually used the HNSW index, and the recall had the candidates been re-sorted by distance.

The corpus is real chunks embedded by the real model, grown with noisy copies (see bench/search_corpus.py).

    python -m bench.search [--sizes 10000,100000] [--queries 150] [--seconds 20] [--quick] [--keep]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import numpy as np
import psycopg
import requests

from bench.common import drop_database, gunicorn, machine, row
from bench.search_corpus import (
    FILTER_SITE,
    NOISE,
    SITES,
    Base,
    connect,
    create_database,
    load,
    load_base,
    pydocs_available,
)
from services.api.search import search
from shared import logs
from shared.embedders.local import LocalEmbedder
from shared.query_settings import QuerySettings

GOALS = {"p50_ms": 15.0, "p99_ms": 50.0, "rps": 150.0, "recall": 0.98}
EF_SEARCH = (40, 100, 200)  # the app uses 100
APP_EF = 100
CANDIDATES = 50  # the app's vector side returns this many before fusion; recall is on the first K
MIN_SIMILARITY = QuerySettings().min_similarity  # what the API passes too (CMSRAG_MIN_SIMILARITY unset)
K = 10
WIDTHS = (52, 9, 9, 9, 30)
RECALL_WIDTHS = (46, 10, 11, 15, 29)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def recall_at_k(approx: list[list[int]], exact: list[list[int]], k: int = K) -> float:
    """Mean over queries of |approx top-k ∩ exact top-k| / |exact top-k| (queries with no exact result skipped)."""
    scores = [len(set(a[:k]) & set(e[:k])) / len(e[:k]) for a, e in zip(approx, exact, strict=True) if e]
    return sum(scores) / len(scores) if scores else 1.0


def ms(values: list[float], q: float) -> float:
    return round(percentile(values, q) * 1000, 2)


def hammer(make_call: Callable[[], Callable[[int], bool]], concurrency: int, seconds: float,
           n: int) -> dict[str, float]:
    """`concurrency` threads call as fast as they can for `seconds`; each thread gets its own call (session or
    connection). Also reports the CPU this client process used, which the 2 cores lend it from the server."""
    deadline = time.perf_counter() + seconds
    lat: list[float] = []
    errors = [0]
    lock = threading.Lock()

    def worker(w: int) -> None:
        call, mine, bad, i = make_call(), [], 0, w
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            ok = call(i % n)
            mine.append(time.perf_counter() - t0)
            bad += not ok
            i += concurrency
        with lock:
            lat.extend(mine)
            errors[0] += bad

    cpu0, t0 = time.process_time(), time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(worker, range(concurrency)))
    elapsed = time.perf_counter() - t0
    return {"rps": round((len(lat) - errors[0]) / elapsed, 1), "load_p50_ms": ms(lat, 50),
            "load_p99_ms": ms(lat, 99), "load_errors": errors[0],
            "client_cpu": round((time.process_time() - cpu0) / elapsed, 2)}


@contextmanager
def api_server(db_url: str, args: argparse.Namespace) -> Iterator[str]:
    """The query API under gunicorn, as in production, on a free port; yields its base URL."""
    sites = [{"name": s, "kind": "wordpress", "url": f"https://{s}.example.org"} for s in SITES]
    env = {**os.environ, "DATABASE_URL": db_url, "CMSRAG_SITES": json.dumps(sites), "CMSRAG_EMBEDDER": "local",
           "CMSRAG_LOG_LEVEL": "WARNING", "CMSRAG_RATE_PUBLIC": "1000000/min,burst=100000"}
    if args.torch_threads:  # torch's intra-op threads per worker (default: one per core)
        env["OMP_NUM_THREADS"] = str(args.torch_threads)
    with gunicorn("services.api.wsgi:app", env, workers=args.workers, threads=args.threads,
                  start_timeout=120) as base:
        yield base


def body_maker(base: str, query: str) -> Callable[[str, str | None], dict[str, Any]]:
    """The request body the running API accepts: `filters: {site}` (new), else a top-level `site` (today's)."""
    def new(q: str, site: str | None) -> dict[str, Any]:
        return {"query": q, "k": K, **({"filters": {"site": site}} if site else {})}

    def old(q: str, site: str | None) -> dict[str, Any]:
        return {"query": q, "k": K, **({"site": site} if site else {})}

    answers = []
    for make in (new, old):
        r = requests.post(f"{base}/v1/search", json=make(query, FILTER_SITE), timeout=60)
        if r.status_code == 200:
            return make
        answers.append(f"{r.status_code} {r.text[:200]}")
    raise RuntimeError(f"the API refused both body shapes for a filtered search: {answers}")


def vector_hits(conn: psycopg.Connection[Any], qv: np.ndarray, q: str, site: str | None,
                ef: int | None) -> list[tuple[int, float]]:
    """(chunk id, similarity) of the app's vector-only search, all CANDIDATES of them in the app's order;
    ef=None is the exact search (index scans off for this transaction)."""
    with conn.transaction():
        if ef is None:
            conn.execute("SET LOCAL enable_indexscan = off")
        hits = search(conn, qv, q, k=CANDIDATES, site=site, mode="vector", ef_search=ef or APP_EF)
    return [(h.chunk_id, h.similarity) for h in hits]


def hnsw_scans(conn: psycopg.Connection[Any]) -> int:
    """Scans of the HNSW index so far (this backend's pending counts flushed first): tells whether the planner
    used the index or chose an exact scan, which it may do on small tables or at a high ef_search."""
    conn.execute("SELECT pg_stat_force_next_flush()")
    row_ = conn.execute("SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = 'chunks_embedding_hnsw'"
                        ).fetchone()
    return int(row_[0]) if row_ else 0


def recall_table(conn: psycopg.Connection[Any], base: Base) -> dict[str, Any]:
    """Recall@10, p50 and HNSW use of the vector search at each ef_search, unfiltered and filtered, vs exact.
    `resorted`: recall@10 had the app re-sorted its candidates by distance (iterative scans in relaxed_order
    may return them slightly out of order)."""
    out: dict[str, Any] = {}
    for site in (None, FILTER_SITE):
        exact: list[list[int]] = []
        for ef in (None, *EF_SEARCH):
            found, lat, scans = [], [], hnsw_scans(conn)
            for qv, q in zip(base.query_vectors, base.questions, strict=True):
                t0 = time.perf_counter()
                found.append(vector_hits(conn, qv, q, site, ef))
                lat.append(time.perf_counter() - t0)
            top = [[i for i, _ in hits[:K]] for hits in found]
            resorted = [[i for i, _ in sorted(hits, key=lambda h: -h[1])[:K]] for hits in found]
            exact = exact or top
            out[f"{'exact' if ef is None else f'ef{ef}'}_{site or 'all'}"] = {
                "recall": round(recall_at_k(top, exact), 4), "resorted": round(recall_at_k(resorted, exact), 4),
                "p50_ms": ms(lat, 50), "hnsw_used": hnsw_scans(conn) - scans}
    return out


def interleaved(calls: dict[str, Callable[[int], bool]], n: int) -> dict[str, dict[str, float]]:
    """p50/p99 of each call, one request at a time, taking turns per query so that all of them see the same
    background load (the machine is shared), `rps` = 1 / mean for one caller, and failed calls."""
    lat: dict[str, list[float]] = {name: [] for name in calls}
    errors = dict.fromkeys(calls, 0)
    for i in range(n):
        for name, call in calls.items():
            t0 = time.perf_counter()
            errors[name] += not call(i)
            lat[name].append(time.perf_counter() - t0)
    return {name: {"p50_ms": ms(v, 50), "p99_ms": ms(v, 99), "rps": round(len(v) / sum(v), 1),
                   "errors": errors[name]} for name, v in lat.items()}


def measure(size: int, base: Base, embedder: LocalEmbedder, args: argparse.Namespace) -> dict[str, Any]:
    url = create_database(f"cmsrag_bench_search_{size}", embedder)
    qv, qs, n = base.query_vectors, base.questions, len(base.questions)
    fig: dict[str, Any] = {"size": size, "queries": n, "samples": n * args.passes}
    conns: list[psycopg.Connection[Any]] = []

    def sql_call(site: str | None = None) -> Callable[[int], bool]:
        conns.append(db := connect(url))

        def run(i: int) -> bool:
            search(db, qv[i % n], qs[i % n], k=K, site=site, min_similarity=MIN_SIMILARITY)
            return True
        return run

    def hnsw_call() -> Callable[[int], bool]:
        """The vector side's floor: the HNSW top-10 with no join, filter or full text."""
        conns.append(db := connect(url))

        def run(i: int) -> bool:
            with db.transaction():
                db.execute(f"SET LOCAL hnsw.ef_search = {APP_EF}")
                sql = "SELECT id FROM chunks ORDER BY embedding <=> %s LIMIT 10"
                return len(db.execute(sql, (qv[i % n],)).fetchall()) == K
        return run

    try:
        with connect(url) as db:
            fig["load"] = {k: round(v, 1) for k, v in load(db, base, size, embedder.model_id).items()}
            fig["recall"] = recall_table(db, base)  # also warms the caches for what follows
        with api_server(url, args) as api:
            make_body = body_maker(api, qs[0])

            def api_call(site: str | None = None, path: str = "/v1/search") -> Callable[[int], bool]:
                session = requests.Session()

                def post(i: int) -> bool:
                    try:
                        if path != "/v1/search":
                            return session.get(f"{api}{path}", timeout=60).status_code == 200
                        r = session.post(f"{api}{path}", json=make_body(qs[i % n], site), timeout=60)
                    except requests.RequestException:
                        return False
                    return r.status_code == 200
                return post

            hammer(api_call, args.concurrency, 5, n)  # warm-up: each worker loads the model on its first query
            fig.update(interleaved({
                "api_all": api_call(), "api_site": api_call(FILTER_SITE),
                "embed": lambda i: bool(embedder.embed([qs[i % n]])),
                "sql_all": sql_call(), "sql_site": sql_call(FILTER_SITE), "hnsw": hnsw_call(),
                "healthz": api_call(path="/healthz"),
            }, n * args.passes))
            fig["api_all"].update(hammer(api_call, args.concurrency, args.seconds, n))
        fig["sql_all"].update(hammer(sql_call, args.concurrency, args.seconds, n))
    finally:
        for c in conns:
            c.close()
        if not args.keep:
            drop_database(url)
    return fig


def mark(met: bool) -> str:
    return "  met" if met else "  MISSED"


def report(fig: dict[str, Any], args: argparse.Namespace) -> None:
    size, rec, load_ = fig["size"], fig["recall"], fig["load"]
    api, sql, emb = fig["api_all"], fig["sql_all"], fig["embed"]
    print(f"\n## {size:,} chunks — binary COPY {load_['copy_s']} s, then HNSW build {load_['hnsw_build_s']} s "
          f"(m=16, ef_construction=64, maintenance_work_mem=1GB), GIN (tsv) build {load_['gin_build_s']} s")
    print(row("", "p50 ms", "p99 ms", "req/s", "goal at 100k", widths=WIDTHS))
    met = api["p50_ms"] <= GOALS["p50_ms"] and api["p99_ms"] <= GOALS["p99_ms"] and api["rps"] >= GOALS["rps"]
    threads = f", OMP_NUM_THREADS={args.torch_threads}" if args.torch_threads else ""
    lines = [
        (f"POST /v1/search (gunicorn {args.workers}×{args.threads}{threads})", api, api["rps"],
         f"≤15 / ≤50 ms, ≥150/s{mark(met)}"),
        (f"POST /v1/search, filters site={FILTER_SITE}", fig["api_site"], "", ""),
        ("  query embedding alone (this process, 1 at a time)", emb, emb["rps"], ""),
        ("  search SQL alone (hybrid, precomputed vector)", sql, sql["rps"], ""),
        (f"  search SQL alone, site={FILTER_SITE}", fig["sql_site"], "", ""),
        ("  vector top-10 alone (no join, no full text)", fig["hnsw"], "", ""),
        ("  GET /healthz (HTTP stack alone)", fig["healthz"], "", ""),
    ]
    for label, f, rps, goal in lines:
        print(row(label, f["p50_ms"], f["p99_ms"], rps, goal, widths=WIDTHS))
    failed = {name: fig[name]["errors"] for name in ("api_all", "api_site", "sql_all", "sql_site", "hnsw", "healthz")}
    if any(failed.values()):
        print(f"   FAILED requests (one at a time): {failed}")
    rest = api["p50_ms"] - emb["p50_ms"] - sql["p50_ms"]
    print(f"   p50 not in the embedding or the SQL (HTTP, Flask, identify + rate limit, pool, JSON): {rest:.1f} ms")
    print(f"   p50/p99: {fig['samples']} requests each, one at a time, the rows taking turns; req/s: "
          f"{args.concurrency} client threads (SQL: connections) for {args.seconds:.0f} s, under which the API "
          f"answered in p50 "
          f"{api['load_p50_ms']} ms / p99 {api['load_p99_ms']} ms ({api['load_errors']} errors) and the client itself "
          f"used {api['client_cpu']:.2f} of the 2 cores ({sql['client_cpu']:.2f} in the SQL phase)")
    print(row("vector search, recall@10 vs exact", "all", f"site={FILTER_SITE}", "p50 ms", "HNSW used · goal",
              widths=RECALL_WIDTHS))
    for ef in (*EF_SEARCH, None):
        name = f"ef{ef}" if ef else "exact"
        a, s = rec[f"{name}_all"], rec[f"{name}_{FILTER_SITE}"]
        label = "  exact (enable_indexscan = off)" if ef is None else f"  hnsw.ef_search = {ef}"
        label += "  (the app's)" if ef == APP_EF else ""
        goal = f" · ≥0.98{mark(min(a['recall'], s['recall']) >= GOALS['recall'])}" if ef else ""
        print(row(label, f"{a['recall']:.4f}", f"{s['recall']:.4f}", f"{a['p50_ms']}/{s['p50_ms']}",
                  f"{a['hnsw_used']}/{s['hnsw_used']}{goal}", widths=RECALL_WIDTHS))
        if ef and (a["resorted"], s["resorted"]) != (a["recall"], s["recall"]):
            print(row("    its candidates re-sorted by distance", f"{a['resorted']:.4f}", f"{s['resorted']:.4f}",
                      widths=RECALL_WIDTHS))
    print(f"   HNSW used: of the {fig['queries']} queries, how many the planner ran on the HNSW index; it "
          "picks an exact scan when it estimates that cheaper (small tables, high ef_search, a selective filter), "
          "and recall is then 1 by construction")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default=None, help="corpus sizes in chunks, comma-separated (10000,100000)")
    p.add_argument("--queries", type=int, default=150, help="questions, embedded once by the real model")
    p.add_argument("--passes", type=int, default=2, help="sequential passes over the questions for p50/p99")
    p.add_argument("--seconds", type=float, default=None, help="length of each req/s phase (default 20; quick 5)")
    p.add_argument("--concurrency", type=int, default=16, help="client threads in the req/s phases")
    p.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    p.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker")
    p.add_argument("--torch-threads", type=int, default=0, help="OMP_NUM_THREADS for the API workers")
    p.add_argument("--quick", action="store_true", help="smoke run: 1k and 5k chunks, 5 s phases, one pass")
    p.add_argument("--keep", action="store_true", help="keep the databases cmsrag_bench_search_<size>")
    args = p.parse_args()
    args.sizes = args.sizes or ("1000,5000" if args.quick else "10000,100000")
    if args.quick:
        args.passes = 1
    args.seconds = args.seconds or (5.0 if args.quick else 20.0)
    logs.configure("WARNING")
    if not pydocs_available():
        print("needs python3.11-doc (/usr/share/doc/python3.11/html): apt-get install python3.11-doc")
        return 1
    print(f"# search benchmark — {machine()} — {time.strftime('%Y-%m-%d %H:%M')} — "
          f"load average {os.getloadavg()[0]:.2f}")
    embedder = LocalEmbedder()
    base = load_base(embedder, args.queries)
    built = f"embedded now in {base.embed_seconds:.0f} s" if base.embed_seconds else "read from .cmsrag/bench/search"
    print(f"corpus: {len(base.rows):,} real chunks of {len({r['doc'] for r in base.rows})} Python docs pages "
          f"(python3.11-doc, the project's clean/chunk stages, all-MiniLM-L6-v2; {built}). Larger sizes repeat "
          f"those documents: same texts, vector = real vector + N(0, {NOISE}²) per dimension, renormalised. "
          f"Sites {', '.join(f'{k} {v:.0%}' for k, v in SITES.items())} of the documents.")
    print(f"queries: {len(base.questions)} questions (the eval set's, then headings turned into questions), "
          f"embedded once by the real model; search k={K}, hybrid (vector + full text, RRF), min_similarity "
          f"{MIN_SIMILARITY} as in the API")
    figures = []
    for size in (int(s) for s in args.sizes.split(",")):
        fig = measure(size, base, embedder, args)
        report(fig, args)
        figures.append(fig)
    print(f"\nload average at the end {os.getloadavg()[0]:.2f} (it counts this run's own client threads and "
          "database connections too): the 2 cores are shared with other work, whose interference is in these figures")
    print(json.dumps({"bench": "search", "machine": machine(), "base_chunks": len(base.rows),
                      "queries": len(base.questions), "noise": NOISE, "workers": args.workers,
                      "threads": args.threads, "concurrency": args.concurrency, "seconds": args.seconds,
                      "goals": GOALS, "sizes": figures}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
