"""Schema and index set-up against real servers: migrations, vector types per model, refusing a model change."""

from __future__ import annotations

import os

import numpy as np
import psycopg
import pytest

from services.api.search import search
from shared.errors import ConfigError, IndexMismatch
from shared.migrate import ensure_embedding_column, index_config, migrate
from tests.conftest import scratch_database, unavailable


@pytest.fixture
def fresh_db(pg_server_url: str):
    with scratch_database(pg_server_url, "cmsrag_schema") as url, psycopg.connect(url, autocommit=True) as conn:
        yield conn


def column_type(conn) -> str:
    row = conn.execute("SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                       "WHERE attrelid = 'chunks'::regclass AND attname = 'embedding'").fetchone()
    return row[0]


def test_migrating_twice_applies_each_migration_once(fresh_db):
    first = migrate(fresh_db)
    assert first and migrate(fresh_db) == []
    assert fresh_db.execute("SELECT count(*) FROM schema_migrations").fetchone() == (len(first),)


def test_a_small_model_gets_a_vector_column_and_an_hnsw_cosine_index(fresh_db):
    migrate(fresh_db)
    assert ensure_embedding_column(fresh_db, "local:all-MiniLM-L6-v2", 384) == "vector"
    assert column_type(fresh_db) == "vector(384)"
    indexdef = fresh_db.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'chunks_embedding_hnsw'").fetchone()
    assert "hnsw" in indexdef[0] and "vector_cosine_ops" in indexdef[0]


def test_a_model_over_2000_dimensions_is_stored_and_searched_as_halfvec(fresh_db):
    from pgvector.psycopg import register_vector

    migrate(fresh_db)
    assert ensure_embedding_column(fresh_db, "openai:text-embedding-3-large", 3072) == "halfvec"
    assert column_type(fresh_db) == "halfvec(3072)"
    register_vector(fresh_db)
    doc = fresh_db.execute("INSERT INTO documents (site, source_id, status, fetched_at, url, title) "
                           "VALUES ('s', '1', 'indexed', now(), 'https://x/', 'Big') RETURNING id").fetchone()[0]
    vec = np.zeros(3072, dtype=np.float32)
    vec[0] = 1.0
    fresh_db.execute("INSERT INTO chunks (document_id, ordinal, text, token_count, content_hash, embedding) "
                     "VALUES (%s, 0, 'large vectors fit', 3, 'h', %s::halfvec)", (doc, vec))
    hits = search(fresh_db, vec, "large vectors", k=1, vector_type="halfvec")
    assert [h.text for h in hits] == ["large vectors fit"]


def test_changing_the_embedding_model_is_refused_with_instructions(fresh_db):
    migrate(fresh_db)
    ensure_embedding_column(fresh_db, "local:all-MiniLM-L6-v2", 384)
    with pytest.raises(IndexMismatch, match="cmsrag migrate --reset-embeddings"):
        ensure_embedding_column(fresh_db, "openai:text-embedding-3-small", 1536)
    assert index_config(fresh_db) == ("local:all-MiniLM-L6-v2", 384, "vector")


def test_resetting_embeddings_switches_the_model_and_clears_indexed_documents(fresh_db):
    migrate(fresh_db)
    ensure_embedding_column(fresh_db, "local:all-MiniLM-L6-v2", 384)
    fresh_db.execute("INSERT INTO documents (site, source_id, status, fetched_at) VALUES ('s', '1', 'indexed', now())")
    assert ensure_embedding_column(fresh_db, "openai:text-embedding-3-small", 1536, reset=True) == "vector"
    assert index_config(fresh_db) == ("openai:text-embedding-3-small", 1536, "vector")
    assert column_type(fresh_db) == "vector(1536)"
    assert fresh_db.execute("SELECT count(*) FROM documents").fetchone() == (0,)


def test_a_server_without_pgvector_gets_a_clear_error():
    """The machine's own PostgreSQL has no pgvector: exactly the case a user hits with a wrong DATABASE_URL."""
    url = os.environ.get("CMSRAG_TEST_PLAIN_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    try:
        conn = psycopg.connect(url, connect_timeout=3, autocommit=True)
    except psycopg.OperationalError as exc:
        unavailable("a PostgreSQL server without pgvector", str(exc))
    with conn:
        if conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone():
            pytest.skip("this server has pgvector; the error path needs one without")
        with pytest.raises(ConfigError, match="does not have the pgvector extension"):
            migrate(conn)
