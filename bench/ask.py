"""`/v1/ask/stream` time to first token with a fake streaming LLM: the part of an answer's latency we control.

The API runs under gunicorn as in production, with the real local query embedder over the sample site (485 real
chunks), and its language model is the OpenAI-compatible fake server (zero latency, streaming) through the real
`openai` SDK. Beside it, in the same run: the same SDK streaming straight from the fake (the model side's own time
to first token), and `/v1/search` for the same questions (embed + retrieve). What is left — our overhead before the
first token — is what this benchmark watches. A second pass asks the same questions again: answers from the cache.

    python -m bench.ask [--questions 40]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import openai
import requests

from bench.common import EVAL_QUESTIONS, drop_database, fresh_database, gunicorn, machine, sample_site
from services.cli.app import App
from services.embedder.pipeline import Pipeline
from shared import logs
from shared.models import DocRef
from shared.settings import Settings
from shared.sources import make_source
from tests.fakes.openai_server import FakeOpenAIServer

EXTRA = ["How do I give a function parameter a default value?", "What is a list comprehension?",
         "How do I read a file line by line?", "What does the break statement do in a loop?"]
ANSWER = "Use a default value in the def line [1]. Defaults are evaluated once [2]; use None for mutables [1]."


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def questions(n: int) -> list[str]:
    found = list(EXTRA)
    if EVAL_QUESTIONS.exists():
        found += [json.loads(line)["question"] for line in EVAL_QUESTIONS.read_text().splitlines() if line.strip()]
    return found[:n]


def stream_ttft(base: str, question: str) -> tuple[float, float, float, bool, bool]:
    """Seconds to the `sources` event, to the first `token`, to `done`; whether cached; whether refused."""
    t0 = time.perf_counter()
    sources = first = 0.0
    with requests.post(f"{base}/v1/ask/stream", json={"question": question}, stream=True, timeout=60) as r:
        r.raise_for_status()
        event = ""
        for line in r.iter_lines(decode_unicode=True):
            if line.startswith("event: "):
                event = line[7:]
                if event == "sources" and not sources:
                    sources = time.perf_counter() - t0
                elif event == "token" and not first:
                    first = time.perf_counter() - t0
            elif event == "done" and line.startswith("data: "):
                done = json.loads(line[6:])
                return sources, first, time.perf_counter() - t0, done["cached"], done["refused"]
    raise RuntimeError("the stream ended without a done event")


def line(label: str, values: list[float]) -> str:
    return (f"{label:<46}{1000 * statistics.median(values):>9.1f}{1000 * pct(values, 99):>9.1f}"
            f"{1000 * max(values):>9.1f}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--questions", type=int, default=40)
    args = p.parse_args()
    logs.configure("WARNING")
    db_url = fresh_database("ask")
    site = sample_site()
    env = {**os.environ, "DATABASE_URL": db_url, "CMSRAG_LOG_LEVEL": "WARNING",
           "CMSRAG_SITES": json.dumps([{"name": "sample", "kind": "wxr", "path": str(site.path),
                                        "url": "https://python-tutorial.example/"}]),
           "CMSRAG_RATE_PUBLIC": "1000000/min,burst=100000", "HF_HUB_OFFLINE": "1"}
    env.pop("RABBITMQ_URL", None)
    with FakeOpenAIServer(answer=lambda _m: ANSWER) as llm:
        env.update(CMSRAG_LLM="openai-compatible", CMSRAG_LLM_BASE_URL=llm.base_url, CMSRAG_LLM_MODEL="fake-chat")
        try:
            settings = Settings.from_env(env)
            app = App(settings)
            app.migrate()
            t0 = time.perf_counter()
            pipeline = Pipeline(settings, app.db, app.embedder)
            ids = [d.source_id for d in make_source(settings.site("sample"), settings).list_documents()]
            for sid in ids:
                pipeline.sync(DocRef("sample", sid))
            print(f"# ask — {machine()} — {time.strftime('%Y-%m-%d %H:%M')}")
            print(f"indexed the sample site with the local model: {len(ids)} documents in "
                  f"{time.perf_counter() - t0:.0f} s")
            app.close()
            with gunicorn("services.api.wsgi:app", env, workers=1, threads=4, start_timeout=120) as base:
                qs = questions(args.questions)
                stream_ttft(base, "warm up the model and the connection pool")
                misses = [stream_ttft(base, q) for q in qs]
                hits = [stream_ttft(base, q) for q in qs]
                search = []
                for q in qs:
                    t = time.perf_counter()
                    requests.post(f"{base}/v1/search", json={"query": q, "k": 6}, timeout=30).raise_for_status()
                    search.append(time.perf_counter() - t)
                client = openai.OpenAI(base_url=llm.base_url, api_key="x")
                direct = []
                for q in qs:
                    t = time.perf_counter()
                    for chunk in client.chat.completions.create(model="fake-chat", stream=True,
                                                                messages=[{"role": "user", "content": q}]):
                        if chunk.choices and chunk.choices[0].delta.content:
                            break
                    direct.append(time.perf_counter() - t)
        finally:
            drop_database(db_url)
    answered = [m for m in misses if not m[4]]
    print(f"{len(qs)} questions, sequential; gunicorn 1 worker × 4 threads; ms")
    print(f"{'':<46}{'p50':>9}{'p99':>9}{'max':>9}")
    print(line("POST /v1/search (embed + retrieve)", search))
    print(line("ask/stream: sources event", [m[0] for m in misses]))
    print(line(f"ask/stream: first token ({len(answered)} answered)", [m[1] for m in answered]))
    print(line("ask/stream: done", [m[2] for m in misses]))
    print(line("baseline: SDK → fake LLM first token, direct", direct))
    cached = [h for h in hits if h[3]]
    if cached:
        print(line(f"ask/stream from cache: first token ({len(cached)} cached)", [h[1] for h in cached]))
    overhead = statistics.median([m[1] for m in answered]) - statistics.median(direct)
    print(f"our part of time to first token (p50 ask TTFT − p50 direct LLM TTFT): {1000 * overhead:.1f} ms; "
          f"refused without a model call: {len(misses) - len(answered)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
