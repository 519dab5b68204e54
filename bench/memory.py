"""Peak memory of the worker and the API, each beside the floor it cannot go below, measured in the same run.

    python -m bench.memory [--docs 40] [--searches 300] [--asks 30]

A peak is the kernel's high-water mark of resident memory (`VmHWM` in /proc/PID/status), read when the process
has done its work, so a short spike between two samples is not missed. Floors, from the same machine and run:

- worker: a bare process that loads the same model and embeds the same chunks in the worker's batch size —
  what the model alone needs; the worker's peak minus it is what the pipeline (broker, threads, HTML, database
  pool) adds;
- API: a gunicorn worker serving a one-line Flask app (the web stack alone), and the model floor above, since
  each API process embeds questions with the same model.

Ratios against the floors travel between machines better than megabytes do; both are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from bench.common import (
    EVAL_QUESTIONS,
    PYDOCS,
    drop_database,
    fresh_database,
    gunicorn,
    machine,
    pydocs_ids,
    rabbitmq_url,
    row,
)
from services.cli.app import App
from shared.settings import Settings

SITE = {"name": "pydocs", "kind": "files", "path": str(PYDOCS), "url": "https://docs.python.org/3.11/"}


def peak_mib(pid: int) -> float:
    """The process's resident high-water mark in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


def gunicorn_workers(base: str) -> list[int]:
    """The worker processes of the gunicorn serving `base`: of the processes holding its listening socket
    (master and workers), those whose parent is one of them."""
    port = base.rsplit(":", 1)[1]
    out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    pids = {int(p.split(",")[0]) for p in out.split("pid=")[1:]}
    return sorted(p for p in pids if _parent(p) in pids)


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def service_env(db_url: str, **extra: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": db_url, "CMSRAG_SITES": json.dumps([SITE]), "CMSRAG_EMBEDDER": "local",
            "CMSRAG_LOG_LEVEL": "WARNING", "CMSRAG_RATE_PUBLIC": "1000000/min,burst=100000", **extra}


def model_floor(texts: list[str], batch: int, *, one_by_one: bool = False) -> float:
    """Peak of a process that only loads the model and embeds `texts` in batches of `batch` (or each text
    alone, as the API embeds questions)."""
    script = textwrap.dedent(f"""
        import json, sys
        from shared.embedders.local import LocalEmbedder
        texts = json.load(sys.stdin)
        e = LocalEmbedder(batch_size={batch})
        for t in ([[t] for t in texts] if {one_by_one} else [texts]):
            e.embed(t)
        print(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])
    """)
    out = subprocess.run([sys.executable, "-c", script], input=json.dumps(texts), capture_output=True, text=True,
                         check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return int(out.stdout.strip().splitlines()[-1]) / 1024


def worker_peak(db_url: str, amqp: str, ids: list[str]) -> tuple[float, float]:
    """(peak MiB, seconds) of one `cmsrag worker` process that indexes `ids` through RabbitMQ."""
    prefix = f"benchmem{uuid.uuid4().hex[:6]}"
    env = service_env(db_url, RABBITMQ_URL=amqp, CMSRAG_QUEUE_PREFIX=prefix, CMSRAG_METRICS_PORT="0")
    settings = Settings.from_env(env)
    app = App(settings)
    worker = subprocess.Popen([sys.executable, "-m", "services.cli", "worker"], env=env)
    try:
        t0 = time.perf_counter()
        sum(app.queue.request_many("pydocs", ids))
        from services.cli.indexing import wait_until_done

        if not wait_until_done(app, "pydocs", progress=False, timeout=3600):
            raise RuntimeError("the worker did not finish within an hour")
        seconds = time.perf_counter() - t0
        return peak_mib(worker.pid), seconds
    finally:
        worker.terminate()
        worker.wait(timeout=60)
        app.close()


def api_peaks(db_url: str, questions: list[str], searches: int, asks: int) -> list[float]:
    """Peak MiB of each gunicorn worker of the API after `searches` searches and `asks` extractive answers."""
    with gunicorn("services.api.wsgi:app", service_env(db_url), workers=2, threads=4, start_timeout=180) as base:
        def call(i: int) -> None:  # a new connection each time, so both workers get their share
            if i < searches:
                r = requests.post(f"{base}/v1/search", json={"query": questions[i % len(questions)], "k": 10},
                                  timeout=60)
            else:
                r = requests.post(f"{base}/v1/ask", json={"question": questions[i % len(questions)]}, timeout=120)
            r.raise_for_status()

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(call, range(searches + asks)))
        return [peak_mib(pid) for pid in gunicorn_workers(base)]


def flask_floor() -> list[float]:
    """Peak MiB of each gunicorn worker serving a one-line Flask app, after the same number of requests."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    with gunicorn("memory_hello:app", env, workers=2, threads=4) as base:
        for _ in range(300):
            requests.get(f"{base}/readyz", timeout=10).raise_for_status()
        return [peak_mib(pid) for pid in gunicorn_workers(base)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=40, help="python3.11-doc pages the worker indexes")
    parser.add_argument("--searches", type=int, default=300)
    parser.add_argument("--asks", type=int, default=30)
    args = parser.parse_args()
    amqp = rabbitmq_url()
    if amqp is None or not PYDOCS.exists():
        print("needs RabbitMQ and python3.11-doc (make services)", file=sys.stderr)
        return 2
    questions = [json.loads(line)["question"] for line in EVAL_QUESTIONS.read_text().splitlines() if line.strip()]
    db_url = fresh_database("memory")
    try:
        settings = Settings.from_env(service_env(db_url))
        app = App(settings)
        app.migrate()
        from bench.common import chunk_corpus

        ids = pydocs_ids(args.docs)
        corpus = chunk_corpus(settings, settings.sites[0], ids, app.embedder)
        app.close()
        floor = model_floor(corpus.texts, settings.embed_batch_size)
        query_floor = model_floor(questions, 1, one_by_one=True)
        worker, seconds = worker_peak(db_url, amqp, ids)
        api = api_peaks(db_url, questions, args.searches, args.asks)
        web = flask_floor()
    finally:
        drop_database(db_url)
    print(f"\n## Memory: peak RSS (VmHWM) — {machine()}")
    print(f"worker: {len(ids)} pages, {len(corpus.texts)} chunks indexed in {seconds:.0f} s; API: {args.searches} "
          f"searches + {args.asks} extractive answers over 2 gunicorn workers")
    print(row("", "peak MiB", "floor MiB", "ratio", widths=(50, 12, 12, 10)))
    print(row("worker (1 process, model + pipeline)", f"{worker:.0f}", f"{floor:.0f}", f"{worker / floor:.2f}",
              widths=(50, 12, 12, 10)))
    for i, (a, w) in enumerate(zip(api, web, strict=False)):
        print(row(f"API gunicorn worker {i + 1} vs one-line Flask app", f"{a:.0f}", f"{w:.0f}", f"{a / w:.1f}",
                  widths=(50, 12, 12, 10)))
        print(row(f"API gunicorn worker {i + 1} vs the model alone", f"{a:.0f}", f"{query_floor:.0f}",
                  f"{a / query_floor:.2f}", widths=(50, 12, 12, 10)))
    print("floors: the model alone = a bare process loading all-MiniLM-L6-v2 and embedding the same chunks in the "
          "same batches (worker) or the questions one at a time (API); the web stack alone = gunicorn + Flask "
          "answering /readyz")
    return 0


if __name__ == "__main__":
    sys.exit(main())
