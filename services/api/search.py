"""Hybrid retrieval: pgvector HNSW (cosine) and Postgres full text, fused with Reciprocal Rank Fusion.

Each side returns its top `candidates` chunks of indexed documents; RRF (score = Σ w/(k + rank)) merges them
without having to calibrate cosine distances against ts_rank. The full-text side matches *any* of the
question's words (a visitor's question rarely has all its words on the answering page; `websearch_to_tsquery`'s
AND found nothing for 34 of 50 development questions) and ranks by cover density, weighted `TEXT_WEIGHT`.
`hnsw.iterative_scan` keeps filtered vector queries returning enough rows when a filter (site, type) removes most
of the nearest neighbours.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import psycopg

from services.api.filters import Filters

RRF_K = 60
TEXT_MATCH_ALLOWANCE = 0.16
# How much a full-text rank counts against a vector rank in the fusion. Full text alone is much weaker on
# visitors' natural-language questions (see docs/benchmarks.md, eval), so it breaks ties and adds exact-term
# matches rather than outvoting the vector side.
TEXT_WEIGHT = 0.1
# HNSW search breadth: bench.search measured recall@10 vs exact of 0.971 at 100 and 0.993 at 200 (10k chunks,
# unfiltered) for ~0.5 ms more per query; the vector side asks for 50 candidates, so it must stay well above 50.
EF_SEARCH = 200
SEARCH_SQL = """
WITH vec AS (
    SELECT id, row_number() OVER (ORDER BY dist, id) AS rank FROM (
        SELECT c.id, c.embedding <=> %(qv)s::VTYPE AS dist FROM chunks c JOIN documents d ON d.id = c.document_id
        WHERE d.status = 'indexed' AND d.audience = %(audience)s AND FILTER
        ORDER BY dist LIMIT %(n)s) v
), fts AS (
    SELECT id, row_number() OVER (ORDER BY r DESC, id) AS rank FROM (
        SELECT c.id, ts_rank_cd(c.tsv, q, 32) AS r
        FROM TEXT_POOL JOIN documents d ON d.id = c.document_id,
             CAST(replace(plainto_tsquery(%(tsconfig)s::regconfig, %(q)s)::text, ' & ', ' | ') AS tsquery) q
        WHERE c.tsv @@ q AND d.status = 'indexed' AND d.audience = %(audience)s AND FILTER
        ORDER BY r DESC LIMIT %(n)s) f
)
SELECT c.id, d.site, d.source_id, d.title, d.url, c.anchor, c.heading_path, c.text, c.content_hash,
       1 - (c.embedding <=> %(qv)s::VTYPE) AS similarity, vec.rank AS vector_rank, fts.rank AS text_rank,
       c.tsv @@ websearch_to_tsquery(%(tsconfig)s::regconfig, %(q)s) AS all_terms,
       coalesce(%(wv)s / (%(k)s + vec.rank), 0) + coalesce(%(wt)s / (%(k)s + fts.rank), 0) AS score
FROM vec FULL OUTER JOIN fts USING (id)
JOIN chunks c ON c.id = coalesce(vec.id, fts.id) JOIN documents d ON d.id = c.document_id
ORDER BY score DESC, c.id LIMIT %(limit)s
"""
# Which passages the any-word full-text side ranks. Over the whole index it costs ~280 ms at 100k chunks (a
# question's common words match a quarter of all passages: bench.search), so hybrid ranks only the vector
# candidates plus passages holding *every* query word (a cheap GIN lookup: exact names the embedding misses).
# At TEXT_WEIGHT 0.1 a passage found by neither could not reach the top k anyway. `fulltext` mode ranks all.
POOL_ALL = "chunks c"
POOL_CANDIDATES = """(SELECT id FROM vec UNION SELECT id FROM (
        SELECT c.id FROM chunks c JOIN documents d ON d.id = c.document_id
        WHERE c.tsv @@ websearch_to_tsquery(%(tsconfig)s::regconfig, %(q)s) AND d.status = 'indexed'
          AND d.audience = %(audience)s AND FILTER LIMIT %(n)s) exact) pool JOIN chunks c ON c.id = pool.id"""



@dataclass(frozen=True)
class Hit:
    """One retrieved passage with what a citation needs."""

    chunk_id: int
    site: str
    source_id: str
    title: str
    url: str
    anchor: str | None
    heading_path: list[str]
    text: str
    content_hash: str
    similarity: float
    vector_rank: int | None
    text_rank: int | None
    score: float
    all_terms: bool = False  # the passage holds every word of the query

    @property
    def link(self) -> str:
        """The deep link to the section holding the passage: `url#anchor`."""
        return f"{self.url}#{self.anchor}" if self.anchor and self.url else self.url

    def snippet(self, width: int = 240) -> str:
        text = " ".join(self.text.split())
        return text if len(text) <= width else text[: width - 1].rsplit(" ", 1)[0] + "…"

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["link"] = self.link
        d["snippet"] = self.snippet()
        return d


def search(conn: psycopg.Connection[Any], query_vector: Any, query: str, *, k: int = 10, site: str | None = None,
           filters: Filters | None = None, mode: str = "hybrid", candidates: int = 50, ef_search: int = EF_SEARCH,
           audience: str = "public", vector_type: str = "vector", min_similarity: float | None = None) -> list[Hit]:
    """Top `k` passages for `query`. `mode` is hybrid, vector or fulltext (the single modes weight the other side 0).

    With `min_similarity`, weak matches are dropped (see `is_relevant`) before taking the top `k`.
    """
    if mode not in ("hybrid", "vector", "fulltext"):
        raise ValueError(f"unknown search mode {mode!r}")
    filters = filters or Filters()
    if site is not None:
        filters = replace_sites(filters, site)
    condition, fparams = filters.sql()
    params = {"qv": np.asarray(query_vector, dtype=np.float32), "q": query, "audience": audience,
              "tsconfig": filters.text_config, "n": max(candidates, k), "k": RRF_K,
              "limit": k if min_similarity is None else max(candidates, k),
              "wv": 0.0 if mode == "fulltext" else 1.0, "wt": 0.0 if mode == "vector" else TEXT_WEIGHT, **fparams}
    with conn.transaction():
        conn.execute(f"SET LOCAL hnsw.ef_search = {int(ef_search)}")
        conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        sql = SEARCH_SQL.replace("TEXT_POOL", POOL_ALL if mode == "fulltext" else POOL_CANDIDATES)
        sql = sql.replace("VTYPE", "halfvec" if vector_type == "halfvec" else "vector")
        rows = conn.execute(sql.replace("FILTER", condition).encode(), params, prepare=False).fetchall()
    hits = [Hit(chunk_id=r[0], site=r[1], source_id=r[2], title=r[3] or "", url=r[4] or "", anchor=r[5],
                heading_path=list(r[6]), text=r[7], content_hash=r[8], similarity=float(r[9]), vector_rank=r[10],
                text_rank=r[11], all_terms=bool(r[12]), score=float(r[13])) for r in rows]
    hits = [h for h in hits if h.score > 0]
    if min_similarity is not None:
        hits = [h for h in hits if is_relevant(h, min_similarity)]
    return hits[:k]


def is_relevant(hit: Hit, min_similarity: float) -> bool:
    """A passage counts when it is semantically close, or holds every word of the query and is loosely close.

    Cosine similarity is the only calibrated signal here (RRF scores are ranks); holding all the query's words
    lowers the bar, because exact terms (an API name, an option like `-O`) are strong evidence the small
    embedding model may miss. Matching *some* words is not: nearly every passage shares a word with a question.
    """
    if hit.similarity >= min_similarity:
        return True
    return hit.all_terms and hit.similarity >= min_similarity - TEXT_MATCH_ALLOWANCE


def replace_sites(filters: Filters, site: str) -> Filters:
    """`filters` restricted to one site (the CLI's and tests' `site=` shorthand)."""
    return replace(filters, sites=(site,) if filters.sites is None or site in filters.sites else ())


UNKNOWN_TERMS_SQL = """
SELECT t.lexeme FROM unnest(to_tsvector(%(tsconfig)s::regconfig, %(q)s)) AS t(lexeme)
WHERE t.lexeme ~ '^[[:alpha:]]{4,}$' AND NOT EXISTS (
    SELECT 1 FROM chunks c JOIN documents d ON d.id = c.document_id
    WHERE c.tsv @@ t.lexeme::tsquery AND d.status = 'indexed' AND d.audience = %(audience)s AND FILTER)
"""


def unknown_terms(conn: psycopg.Connection[Any], query: str, *, filters: Filters | None = None,
                  audience: str = "public") -> list[str]:
    """The query's words (stemmed, alphabetic, 4+ letters) that appear nowhere in the searchable passages.

    A question about something the site never mentions ("… with matplotlib" on the Python docs) still finds
    passages that are close in general terms; naming a term the site lacks is the stronger signal.
    """
    filters = filters or Filters()
    condition, fparams = filters.sql()
    rows = conn.execute(UNKNOWN_TERMS_SQL.replace("FILTER", condition).encode(),
                        {"q": query, "tsconfig": filters.text_config, "audience": audience, **fparams},
                        prepare=False).fetchall()
    return [r[0] for r in rows]


def searchable_chunks(conn: psycopg.Connection[Any], filters: Filters | None = None,
                      audience: str = "public") -> int:
    """How many passages `filters` leaves searchable (from the documents' chunk counts: no chunk scan)."""
    condition, fparams = (filters or Filters()).sql()
    row = conn.execute(("SELECT coalesce(sum(chunk_count), 0) FROM documents d WHERE d.status = 'indexed' "
                        "AND d.audience = %(audience)s AND " + condition).encode(),
                       {"audience": audience, **fparams}, prepare=False).fetchone()
    return int(row[0]) if row else 0
