"""Helpers shared by the benchmarks: a fresh database per run, chunking a corpus, timing, printing."""

from __future__ import annotations

import contextlib
import os
import platform
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

from services.embedder.chunk import chunk
from services.embedder.clean import clean
from shared.embedders import Embedder
from shared.errors import NotPublic, PipelineError
from shared.settings import PROJECT_ROOT, Settings
from shared.sites import SiteConfig
from shared.sources import make_source

PYDOCS = Path("/usr/share/doc/python3.11/html")
PYDOCS_DIRS = ("library", "tutorial", "howto", "reference", "using")
# The team's development questions sit beside the checkout (../shared/eval); CMSRAG_EVAL_QUESTIONS overrides.
EVAL_QUESTIONS = Path(os.environ.get("CMSRAG_EVAL_QUESTIONS")
                      or PROJECT_ROOT.parent / "shared" / "eval" / "py-questions.jsonl")


def machine() -> str:
    return f"{platform.node()} · {os.cpu_count()} cores · Python {platform.python_version()}"


def fresh_database(label: str) -> str:
    """A new, empty database on `CMSRAG_BENCH_DATABASE_URL` or the embedded server in .cmsrag/bench."""
    server = os.environ.get("CMSRAG_BENCH_DATABASE_URL")
    if not server:
        from shared.pgembedded import embedded_url

        server = embedded_url(PROJECT_ROOT / ".cmsrag" / "bench")
    slug = "".join(c if c.isalnum() else "_" for c in label.lower())[:20]
    name = f"bench_{slug}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return psycopg.conninfo.make_conninfo(server, dbname=name)


def drop_database(url: str) -> None:
    name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    server = psycopg.conninfo.make_conninfo(url, dbname="postgres")
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def rabbitmq_url() -> str | None:
    """RabbitMQ if it answers (production path), else None (the in-memory dev broker)."""
    import pika

    url = os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
    try:
        pika.BlockingConnection(pika.URLParameters(url)).close()
        return url
    except Exception:
        return None


def sample_site() -> SiteConfig:
    return SiteConfig(name="sample", kind="wxr", path=PROJECT_ROOT / "samples" / "python-tutorial.wxr")


def pydocs_site() -> SiteConfig:
    return SiteConfig(name="pydocs", kind="files", path=PYDOCS, url="https://docs.python.org/3.11/")


def pydocs_ids(limit: int | None = None) -> list[str]:
    ids = sorted(str(p.relative_to(PYDOCS)) for d in PYDOCS_DIRS for p in (PYDOCS / d).rglob("*.html"))
    if limit and limit < len(ids):
        step = len(ids) / limit
        ids = [ids[int(i * step)] for i in range(limit)]
    return ids


@dataclass
class Corpus:
    site: SiteConfig
    ids: list[str]
    texts: list[str]  # every chunk's embed_text, as the pipeline would embed them
    prepare_seconds: float
    skipped: int


def chunk_corpus(settings: Settings, site: SiteConfig, ids: list[str], embedder: Embedder) -> Corpus:
    """Fetch, clean and chunk every document once, through the real stages, to know the exact chunks."""
    source = make_source(site, settings)
    t0 = time.perf_counter()
    texts, skipped = [], 0
    for sid in ids:
        try:
            doc = source.fetch(sid)
        except (NotPublic, PipelineError):
            skipped += 1
            continue
        chunks = chunk(doc.title, clean(doc.html, doc.title), max_tokens=settings.chunk_tokens,
                       overlap=settings.chunk_overlap, count_model_tokens=embedder.count_tokens,
                       model_max_tokens=embedder.max_input_tokens)
        texts += [c.embed_text for c in chunks]
    return Corpus(site, ids, texts, time.perf_counter() - t0, skipped)


@contextmanager
def timer() -> Iterator[list[float]]:
    box: list[float] = []
    t0 = time.perf_counter()
    yield box
    box.append(time.perf_counter() - t0)


def row(*cells: object, widths: tuple[int, ...] = (44, 12, 12, 12)) -> str:
    cells_and_widths = enumerate(zip(cells, widths, strict=False))
    return "".join(f"{c!s:<{w}}" if i == 0 else f"{c!s:>{w}}" for i, (c, w) in cells_and_widths)


@contextmanager
def gunicorn(app: str, env: dict[str, str], *, workers: int = 2, threads: int = 4,
             start_timeout: float = 60.0) -> Iterator[str]:
    """`app` (e.g. `services.api.wsgi:app`) under gunicorn as in production, on a free port; yields its base URL.

    Keep-alive is 30 s: gunicorn's default (2 s) can close a connection just as a slow step ends and the client
    reuses it, which shows up as a reset rather than a server error.
    """
    import signal
    import subprocess
    import sys

    import requests

    from tests.cms.wagtail import free_port

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "-w", str(workers), "--threads", str(threads),
                               "--keep-alive", "30", "-b", f"127.0.0.1:{port}", "--log-level", "warning", app],
                              env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            try:
                if requests.get(f"{base}/readyz", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{app} did not become ready under gunicorn")
            time.sleep(0.2)
        yield base
    finally:
        with contextlib.suppress(ProcessLookupError):  # it died at start: let the real error through
            os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
