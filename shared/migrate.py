"""Versioned migrations (`shared/migrations/NNNN_name.sql`) and the model-dependent embedding column.

Safe to re-run: applied versions are recorded, and each file runs in one transaction under an advisory
lock so two processes migrating at once cannot interleave.

The vector column's type follows the model: `vector(d)` up to 2,000 dimensions, `halfvec(d)` above (pgvector's
HNSW index limit for `vector`; text-embedding-3-large has 3,072). Changing the model is **refused** with a
clear error rather than mixing vectors of two models in one index: point `DATABASE_URL` at a fresh database,
or run `cmsrag migrate --reset-embeddings` to drop the vectors and re-index.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

import psycopg
from psycopg import sql

from shared.errors import ConfigError, IndexMismatch
from shared.logs import get_logger

log = get_logger(__name__)
LOCK_ID = 0x636D7372  # "cmsr"
HNSW_MAX_VECTOR_DIMS = 2000


def migration_files() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every bundled migration, in order."""
    found = []
    for entry in resources.files("shared.migrations").iterdir():
        m = re.match(r"^(\d{4})_(\w+)\.sql$", entry.name)
        if m:
            found.append((int(m.group(1)), m.group(2), entry.read_text(encoding="utf-8")))
    return sorted(found)


def require_pgvector(conn: psycopg.Connection[Any]) -> None:
    """Fail early, and in plain words, on a server that cannot provide the `vector` extension."""
    row = conn.execute("SELECT default_version FROM pg_available_extensions WHERE name = 'vector'").fetchone()
    if row is None:
        version = conn.execute("SHOW server_version").fetchone()
        raise ConfigError([
            f"DATABASE_URL: the PostgreSQL server (version {version[0] if version else '?'}) does not have the "
            "pgvector extension installed. Install pgvector on that server (e.g. the pgvector/pgvector image or "
            "the postgresql-NN-pgvector package), or unset DATABASE_URL to use the embedded PostgreSQL + pgvector."])


def migrate(conn: psycopg.Connection[Any]) -> list[int]:
    """Apply the migrations not yet applied; return their versions."""
    require_pgvector(conn)
    applied_now = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_ID,))
        conn.execute("""CREATE TABLE IF NOT EXISTS schema_migrations (
            version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())""")
        done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
        for version, name, body in migration_files():
            if version in done:
                continue
            conn.execute(body.encode())  # trusted, bundled SQL
            conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name))
            log.info("migration_applied", version=version, name=name)
            applied_now.append(version)
    return applied_now


def ensure_embedding_column(conn: psycopg.Connection[Any], model_id: str, dimensions: int, *,
                            reset: bool = False) -> str:
    """Create the chunks' vector column and HNSW index for this model, or check that they match it.

    Returns the vector type in use. Raises `IndexMismatch` when the index belongs to another model.
    """
    vtype = "vector" if dimensions <= HNSW_MAX_VECTOR_DIMS else "halfvec"
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_ID,))
        row = conn.execute("SELECT embedding_model, dimensions, vector_type FROM index_config").fetchone()
        if row and (row[0], row[1]) != (model_id, dimensions):
            if not reset:
                raise IndexMismatch(
                    f"the index holds {row[1]}-dimensional embeddings of {row[0]}, but the settings ask for "
                    f"{model_id} ({dimensions} dimensions). Mixing models would corrupt search. Either set "
                    f"CMSRAG_EMBEDDER/CMSRAG_EMBED_MODEL back, use a fresh database, or run "
                    f"`cmsrag migrate --reset-embeddings` and re-index every site (`cmsrag backfill SITE`)."
                )
            log.warning("embeddings_reset", old_model=row[0], new_model=model_id)
            conn.execute("DROP INDEX IF EXISTS chunks_embedding_hnsw")
            conn.execute("ALTER TABLE chunks DROP COLUMN IF EXISTS embedding")
            conn.execute("DELETE FROM chunks")
            conn.execute("DELETE FROM documents WHERE status <> 'removed'")  # re-indexed from scratch
            conn.execute("DELETE FROM index_config")
            row = None
        if row is None:
            conn.execute(sql.SQL("ALTER TABLE chunks ADD COLUMN IF NOT EXISTS embedding {}({}) NOT NULL").format(
                sql.SQL(vtype), sql.Literal(dimensions)))
            conn.execute(sql.SQL("CREATE INDEX IF NOT EXISTS chunks_embedding_hnsw ON chunks "
                                 "USING hnsw (embedding {}) WITH (m = 16, ef_construction = 64)").format(
                sql.SQL(f"{vtype}_cosine_ops")))
            conn.execute("INSERT INTO index_config (embedding_model, dimensions, vector_type) VALUES (%s, %s, %s)",
                         (model_id, dimensions, vtype))
            log.info("embedding_column_created", model=model_id, dimensions=dimensions, vector_type=vtype)
            return vtype
        return str(row[2])


def index_config(conn: psycopg.Connection[Any]) -> tuple[str, int, str] | None:
    """(model, dimensions, vector type) of the index, or None before the first migrate."""
    try:
        row = conn.execute("SELECT embedding_model, dimensions, vector_type FROM index_config").fetchone()
    except psycopg.errors.UndefinedTable:
        return None
    return (row[0], row[1], row[2]) if row else None
