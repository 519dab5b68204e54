"""Ingest benchmark: end-to-end backfill throughput beside its baselines, measured in the same run.

1. Local model: raw `LocalEmbedder.embed` on exactly the chunks the pipeline will make (the ceiling), then the
   full backfill through the queue (RabbitMQ when it answers, else the in-memory broker) into a fresh
   database: documents/s, chunks/s, and end-to-end as a share of the ceiling (goal ≥ 90 %).
2. OpenAI code path against the local fake server with 100 ms per request: our backfill (batched across
   documents, COPY) beside the seed tutorials' loop (one embeddings request per chunk, one INSERT per row).
   Goal: at least 10 times faster.
3. A one-paragraph edit of a long page: chunks in the page vs texts sent to the model on re-index.

    python -m bench.ingest                  # sample corpus (the bundled WXR), all three parts
    python -m bench.ingest --pydocs 0       # also the Python docs corpus (all pages; N for a subset)
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

from bench.common import (
    PYDOCS,
    chunk_corpus,
    drop_database,
    fresh_database,
    machine,
    pydocs_ids,
    pydocs_site,
    rabbitmq_url,
    row,
    sample_site,
    timer,
)
from services.cli.app import App
from services.cli.indexing import in_process_worker, wait_until_done
from shared import logs
from shared.models import DocRef
from shared.settings import Settings
from shared.sites import SiteConfig

RAW_SAMPLE = 1500  # for big corpora the raw ceiling is measured on a random sample of the same chunks


def settings_for(site: SiteConfig, db_url: str, **kw: object) -> Settings:
    base = Settings(sites=(site,), database_url=db_url, rabbitmq_url=rabbitmq_url(),
                    queue_prefix=f"bench{os.getpid()}", log_level="WARNING")
    return dataclasses.replace(base, **kw)  # type: ignore[arg-type]


def backfill(app: App, site: SiteConfig, ids: list[str]) -> float:
    app.migrate()
    with timer() as t, in_process_worker(app):
        sum(app.queue.request_many(site.name, ids))
        assert wait_until_done(app, site.name, progress=False, timeout=7200)
    return t[0]


def indexed_chunks(app: App) -> tuple[int, int, int]:
    with app.db.connection() as conn:
        row_ = conn.execute("SELECT count(*) FILTER (WHERE status = 'indexed'), coalesce(sum(chunk_count), 0), "
                            "(SELECT count(*) FROM failures) FROM documents").fetchone()
    assert row_ is not None
    return int(row_[0]), int(row_[1]), int(row_[2])


def local_backfill(label: str, site: SiteConfig, ids: list[str]) -> None:
    url = fresh_database(label)
    app = App(settings_for(site, url))
    try:
        corpus = chunk_corpus(app.settings, site, ids, app.embedder)
        app.embedder.embed(corpus.texts[:8])  # load the model before timing anything
        raw_texts = corpus.texts
        if len(raw_texts) > RAW_SAMPLE:
            raw_texts = random.Random(7).sample(raw_texts, RAW_SAMPLE)
        with timer() as t:
            app.embedder.embed(raw_texts)
        elapsed = backfill(app, site, ids)
        with timer() as t2:  # measured again after: these machines are noisy, so the ceiling is the mean of both
            app.embedder.embed(raw_texts)
        raw_before, raw_after = len(raw_texts) / t[0], len(raw_texts) / t2[0]
        raw = (raw_before + raw_after) / 2
        docs, chunks, failures = indexed_chunks(app)
        e2e = chunks / elapsed
        queue = "RabbitMQ" if app.settings.rabbitmq_url else "in-memory"
        print(f"\n## {label}: {len(ids)} documents, {len(corpus.texts)} chunks (local model, queue {queue})")
        print(row("", "docs/s", "chunks/s", "share"))
        print(row(f"raw LocalEmbedder.embed ({len(raw_texts)} chunks)", "", f"{raw:.1f}", "100 %"))
        print(f"   (raw before the backfill {raw_before:.1f}/s, after it {raw_after:.1f}/s)")
        print(row("end-to-end backfill", f"{docs / elapsed:.2f}", f"{e2e:.1f}", f"{100 * e2e / raw:.0f} %"))
        print(f"   ({docs} indexed, {failures} failed, {elapsed:.1f}s; fetch+clean+chunk alone "
              f"{corpus.prepare_seconds:.1f}s)")
        stages = app.runtime.pipeline().totals
        print("   time per stage inside the backfill (summed over both worker threads): " + ", ".join(
            f"{k} {stages[k]:.1f}s" for k in ("fetch", "clean", "chunk", "embed", "store") if k in stages))
    finally:
        app.close()
        drop_database(url)


def seed_way(app: App, texts: list[str]) -> float:
    """The tutorials' loop: one embeddings request per chunk, one INSERT (and commit) per row."""
    import numpy as np
    from openai import OpenAI

    client = OpenAI(api_key="bench", base_url=app.settings.embed_base_url)
    app.migrate()
    with app.db.connection() as conn:
        conn.execute("CREATE TABLE seed_chunks (id serial PRIMARY KEY, text text, embedding vector)")
        with timer() as t:
            for text in texts:
                vec = client.embeddings.create(model=app.settings.embed_model, input=text).data[0].embedding
                conn.execute("INSERT INTO seed_chunks (text, embedding) VALUES (%s, %s)",
                             (text, np.asarray(vec, dtype=np.float32)))
    return t[0]


def openai_backfill(site: SiteConfig, ids: list[str], latency: float) -> None:
    from tests.fakes.openai_server import FakeOpenAIServer

    with FakeOpenAIServer(latency=latency) as server:
        url = fresh_database("openai")
        app = App(settings_for(site, url, embedder="openai", embed_model="text-embedding-3-small",
                               embed_base_url=server.base_url, embed_api_key="bench"))
        try:
            corpus = chunk_corpus(app.settings, site, ids, app.embedder)
            seed_seconds = seed_way(app, corpus.texts)
            seed_requests = server.requests["/v1/embeddings"]
            server.requests.clear()
            elapsed = backfill(app, site, ids)
            _, chunks, _ = indexed_chunks(app)
            ours = chunks / elapsed
            seed = len(corpus.texts) / seed_seconds
            print(f"\n## OpenAI code path, fake server with {latency * 1000:.0f} ms per request: "
                  f"{len(ids)} documents, {len(corpus.texts)} chunks")
            print(row("", "requests", "chunks/s", "speed-up"))
            print(row("seed tutorials' loop (1 request + 1 INSERT per chunk)", seed_requests, f"{seed:.1f}", "1.0×"))
            print(row("cmsrag backfill (batched, COPY)", server.requests["/v1/embeddings"], f"{ours:.1f}",
                      f"{ours / seed:.1f}×"))
        finally:
            app.close()
            drop_database(url)


def edit_reindex() -> None:
    """Index a long page, edit one paragraph, re-index: how many texts reach the model?"""
    tmp = Path(tempfile.mkdtemp(prefix="cmsrag-bench-edit-"))
    page = PYDOCS / "tutorial" / "controlflow.html"
    src = page if page.exists() else None
    if src is None:
        print("\n## edit: skipped (python3.11-doc is not installed)")
        return
    shutil.copy(src, tmp / "controlflow.html")
    site = SiteConfig(name="edit", kind="files", path=tmp, url="https://docs.python.org/3.11/tutorial/")
    url = fresh_database("edit")
    app = App(settings_for(site, url))
    try:
        app.migrate()
        pipeline = app.runtime.pipeline()
        first = pipeline.sync(DocRef("edit", "controlflow.html"))
        html = (tmp / "controlflow.html").read_text()
        needle = "The default value is evaluated only once."
        assert needle in html, "the paragraph to edit is not in this version of the page"
        (tmp / "controlflow.html").write_text(html.replace(needle, "The default value is computed a single time."))
        second = pipeline.sync(DocRef("edit", "controlflow.html"))
        print("\n## re-index after a one-paragraph edit (tutorial/controlflow.html, local model)")
        print(row("", "chunks", "embedded", "reused"))
        print(row("first index", first.chunks, first.stats.embedded, first.stats.reused))
        print(row("after editing one sentence", second.chunks, second.stats.embedded, second.stats.reused))
    finally:
        app.close()
        drop_database(url)
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pydocs", type=int, default=None, metavar="N",
                   help="also backfill N pages of the Python docs corpus (0 = all)")
    p.add_argument("--latency", type=float, default=0.1, help="fake OpenAI latency per request, seconds")
    p.add_argument("--skip", default="", help="comma-separated parts to skip: local,openai,edit")
    args = p.parse_args()
    logs.configure("WARNING")
    skip = set(filter(None, args.skip.split(",")))
    print(f"# ingest benchmark — {machine()} — {time.strftime('%Y-%m-%d %H:%M')}")
    sample = sample_site()
    from shared.sources import make_source

    sample_ids = [d.source_id for d in make_source(sample, Settings.from_env({})).list_documents()]
    if "local" not in skip:
        local_backfill("sample corpus (bundled WXR)", sample, sample_ids)
        if args.pydocs is not None and PYDOCS.exists():
            ids = pydocs_ids(args.pydocs or None)
            local_backfill("Python docs corpus", pydocs_site(), ids)
    if "openai" not in skip:
        openai_backfill(sample, sample_ids, args.latency)
    if "edit" not in skip:
        edit_reindex()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
