"""The search benchmark's corpus and database: real chunks embedded once, grown to 10k-100k rows by copies.

Real embeddings cost ~50 ms a chunk on 2 cores, so 100k of them would take 1.5 h. Instead a base of real chunks
(Python docs pages through the project's own fetch/clean/chunk stages, embedded by the real model) is cached in
`.cmsrag/bench/search/`, and each larger corpus repeats the base documents: copy 0 is the real rows, every
further copy has the same texts (so full text search sees realistic postings) and vectors = the real vector +
small Gaussian noise, renormalised, so the data stays clustered as real embeddings are.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from pgvector.psycopg import register_vector

from bench.common import EVAL_QUESTIONS, PYDOCS, pydocs_ids, pydocs_site
from services.embedder.chunk import chunk
from services.embedder.clean import clean
from shared.embedders.local import LocalEmbedder
from shared.errors import NotPublic, PipelineError
from shared.migrate import ensure_embedding_column, migrate
from shared.pgembedded import embedded_url
from shared.settings import PROJECT_ROOT, Settings
from shared.sources import make_source

CACHE = PROJECT_ROOT / ".cmsrag" / "bench" / "search"
BASE_PAGES = 120  # ~34 chunks a page: ~4,000 real chunks, ~3.5 min of embedding on 2 cores
# per dimension: a derived row keeps cosine ~0.86 to its real vector, about as close as a real chunk's nearest
# real neighbour in this base (median 0.82)
NOISE = 0.03
SITES = {"docs": 0.8, "blog": 0.2}  # each document copy lands on one site; filtered queries ask for "blog"
FILTER_SITE = "blog"
CHUNK_COPY = ("COPY chunks (document_id, ordinal, text, token_count, title, heading_path, headings, anchor, "
              "content_hash, embedding) FROM STDIN WITH (FORMAT BINARY)")
CHUNK_TYPES = ["int8", "int4", "text", "int4", "text", "text[]", "text", "text", "text", "vector"]


@dataclass
class Base:
    """Real chunks (`rows`: dicts with doc, title, url, text, heading_path, anchor, token_count) and vectors."""

    rows: list[dict[str, Any]]
    vectors: np.ndarray
    questions: list[str]
    query_vectors: np.ndarray
    embed_seconds: float  # the real model on the base chunks; 0 when read from the cache


def load_base(embedder: LocalEmbedder, n_queries: int) -> Base:
    """The cached base chunks (or build them: ~4,000 real chunks, ~3.5 min) and `n_queries` questions, all
    embedded by the real model. Questions take ~10 ms each, so they are embedded on every run."""
    CACHE.mkdir(parents=True, exist_ok=True)
    meta = {"model": embedder.model_id, "pages": BASE_PAGES}
    meta_file = CACHE / "meta.json"
    embed_seconds = 0.0
    if meta_file.exists() and json.loads(meta_file.read_text()) == meta:
        rows = [json.loads(line) for line in (CACHE / "chunks.jsonl").read_text().splitlines()]
        vectors = np.load(CACHE / "chunks.npy")
    else:
        rows, texts = real_chunks(embedder)
        t0 = time.perf_counter()
        vectors = np.asarray(embedder.embed(texts), dtype=np.float32)
        embed_seconds = time.perf_counter() - t0
        (CACHE / "chunks.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        np.save(CACHE / "chunks.npy", vectors)
        meta_file.write_text(json.dumps(meta))
    questions = make_questions(rows, n_queries)
    query_vectors = np.asarray(embedder.embed(questions), dtype=np.float32)
    return Base(rows, vectors, questions, query_vectors, embed_seconds)


def real_chunks(embedder: LocalEmbedder) -> tuple[list[dict[str, Any]], list[str]]:
    """Chunks of BASE_PAGES Python docs pages through the real clean/chunk stages; (rows, texts to embed)."""
    settings = Settings(sites=(pydocs_site(),))
    source = make_source(pydocs_site(), settings)
    rows, texts = [], []
    for sid in pydocs_ids(BASE_PAGES):
        try:
            doc = source.fetch(sid)
        except (NotPublic, PipelineError):
            continue
        for c in chunk(doc.title, clean(doc.html, doc.title), max_tokens=settings.chunk_tokens,
                       overlap=settings.chunk_overlap, count_model_tokens=embedder.count_tokens,
                       model_max_tokens=embedder.max_input_tokens):
            rows.append({"doc": sid, "title": doc.title, "url": doc.url, "text": c.text, "anchor": c.anchor,
                         "heading_path": list(c.heading_path), "token_count": c.token_count})
            texts.append(c.embed_text)
    return rows, texts


def make_questions(rows: list[dict[str, Any]], n: int) -> list[str]:
    """The eval set's questions (when present), then headings of the base pages turned into questions, up to n."""
    lines = EVAL_QUESTIONS.read_text().splitlines() if EVAL_QUESTIONS.is_file() else []
    questions = [json.loads(line)["question"] for line in lines if line.strip()]
    headings = sorted({re.sub(r"^[\d.]+\s*", "", r["heading_path"][-1]).strip("¶ ")
                       for r in rows if r["heading_path"]} - {""})
    templates = ("how do I use {} in python", "what is {}", "explain {}", "{} example")
    rng = random.Random(11)
    for h in rng.sample(headings, min(len(headings), max(0, n - len(questions)))):
        questions.append(rng.choice(templates).format(h.lower()))
    return questions[:n]


def derived_corpus(base: Base, size: int, seed: int = 5) -> tuple[list[dict[str, Any]], list[tuple[int, int]],
                                                                  np.ndarray]:
    """`size` rows: copies of the base documents. Returns (documents, (document index, base row) per chunk,
    vectors). Copy 0 is the real rows; later copies get noisy vectors."""
    rng = np.random.default_rng(seed)
    pick = random.Random(seed)
    by_doc: dict[str, list[int]] = {}
    for i, r in enumerate(base.rows):
        by_doc.setdefault(r["doc"], []).append(i)
    docs: list[dict[str, Any]] = []
    refs: list[tuple[int, int]] = []
    copy = 0
    while len(refs) < size:
        for sid, idx in by_doc.items():
            if len(refs) >= size:
                break
            idx = idx[: size - len(refs)]
            site = pick.choices(list(SITES), weights=list(SITES.values()))[0]
            first = base.rows[idx[0]]
            docs.append({"site": site, "source_id": f"{sid}?copy={copy}" if copy else sid,
                         "title": first["title"], "url": first["url"], "chunks": len(idx)})
            refs += [(len(docs) - 1, i) for i in idx]
        copy += 1
    rows = np.array([i for _, i in refs])
    vectors = base.vectors[rows].copy()
    n_real = min(len(base.rows), size)
    noisy = vectors[n_real:] + rng.normal(0, NOISE, size=vectors[n_real:].shape).astype(np.float32)
    vectors[n_real:] = noisy / np.linalg.norm(noisy, axis=1, keepdims=True)
    return docs, refs, vectors


def load(conn: psycopg.Connection[Any], base: Base, size: int, model_id: str) -> dict[str, float]:
    """Fill a migrated database with `size` chunks; rebuild the indexes after the bulk load. Returns timings."""
    docs, refs, vectors = derived_corpus(base, size)
    index_defs = [r[0] for r in conn.execute(
        "SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = 'chunks'::regclass "
        "AND indexrelid::regclass::text IN ('chunks_embedding_hnsw', 'chunks_tsv')")]
    conn.execute("DROP INDEX chunks_embedding_hnsw, chunks_tsv")
    t0 = time.perf_counter()
    with conn.transaction(), conn.cursor() as cur:
        with cur.copy("COPY documents (id, site, source_id, url, title, status, audience, fetched_at, "
                      "embedding_model, chunk_count) FROM STDIN") as copy:
            for i, d in enumerate(docs, 1):
                copy.write_row((i, d["site"], d["source_id"], d["url"], d["title"], "indexed", "public",
                                "now", model_id, d["chunks"]))
        conn.execute("SELECT setval('documents_id_seq', %s)", (len(docs),))
        ordinal: dict[int, int] = {}
        with cur.copy(CHUNK_COPY) as copy:
            copy.set_types(CHUNK_TYPES)
            for (doc, i), vec in zip(refs, vectors, strict=True):
                r = base.rows[i]
                ordinal[doc] = ordinal.get(doc, -1) + 1
                copy.write_row((doc + 1, ordinal[doc], r["text"], r["token_count"], r["title"], r["heading_path"],
                                " ".join(r["heading_path"]), r["anchor"],
                                hashlib.sha256(r["text"].encode()).hexdigest(), vec))
    timings = {"copy_s": time.perf_counter() - t0}
    conn.execute("SET maintenance_work_mem = '1GB'")
    for definition in index_defs:
        name = "hnsw_build_s" if "hnsw" in definition else "gin_build_s"
        t0 = time.perf_counter()
        conn.execute(definition.encode())
        timings[name] = time.perf_counter() - t0
    conn.execute("RESET maintenance_work_mem")
    conn.execute("VACUUM ANALYZE documents, chunks")
    return timings


def create_database(name: str, embedder: LocalEmbedder) -> str:
    """A fresh database `name` in the real schema, on `CMSRAG_BENCH_DATABASE_URL` or the embedded server."""
    server = os.environ.get("CMSRAG_BENCH_DATABASE_URL") or embedded_url(PROJECT_ROOT / ".cmsrag" / "bench")
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    url = psycopg.conninfo.make_conninfo(server, dbname=name)
    with psycopg.connect(url, autocommit=True) as conn:
        migrate(conn)
        ensure_embedding_column(conn, embedder.model_id, embedder.dimensions)
    return url


def connect(url: str) -> psycopg.Connection[Any]:
    # prepare_threshold=None: a prepared plan would keep the HNSW index even with index scans disabled
    conn = psycopg.connect(url, autocommit=True, prepare_threshold=None)
    register_vector(conn)
    return conn


def pydocs_available() -> bool:
    return PYDOCS.is_dir()
