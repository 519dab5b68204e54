"""Shared fixtures: a real PostgreSQL + pgvector and a real RabbitMQ for the tests that need them.

PostgreSQL: `CMSRAG_TEST_DATABASE_URL` (a server with pgvector) if set, else the embedded pgserver started once
per session in a temporary folder. Each session works in a database of its own; each test starts from
empty tables. RabbitMQ: `RABBITMQ_URL` or amqp://guest:guest@127.0.0.1:5672; each test uses queues with a
unique prefix, deleted afterwards.

A missing service skips the test locally and fails it under `CI=true`: CI must never pass by skipping.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from shared.db import Database
from shared.query_settings import QuerySettings, Rate
from shared.settings import Settings
from shared.sites import SiteConfig

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
DEFAULT_RABBITMQ = "amqp://guest:guest@127.0.0.1:5672/%2F"
TABLES = ("documents, chunks, embedding_cache, pending, failures, webhook_deliveries, api_keys, rate_limits, "
          "answer_cache")


def unavailable(what: str, why: str) -> None:
    """Skip locally, fail in CI."""
    msg = f"{what} is not available: {why}"
    if CI:
        pytest.fail(msg + " (CI=true: required services must be present)")
    pytest.skip(msg)


@pytest.fixture(scope="session", autouse=True)
def structured_logs_on_stderr() -> None:
    """Logs go to stderr as in every cmsrag process; unconfigured, structlog would print them to stdout, where
    tests read a command's output (and whether it was configured would depend on which tests ran first)."""
    from shared import logs

    logs.configure("INFO")


@contextmanager
def scratch_database(server_url: str, prefix: str) -> Iterator[str]:
    """A new, empty database `PREFIX_PID` on `server_url` (the pid keeps concurrent sessions apart); its URL.
    Dropped on exit, even with connections still open."""
    name = f"{prefix}_{os.getpid()}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield psycopg.conninfo.make_conninfo(server_url, dbname=name)
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    url = os.environ.get("CMSRAG_TEST_DATABASE_URL")
    if not url:
        try:
            from shared.pgembedded import embedded_url

            url = embedded_url(Path(tempfile.mkdtemp(prefix="cmsrag-test-pg-")))
        except Exception as exc:
            unavailable("PostgreSQL with pgvector", f"embedded server failed to start: {exc}")
    assert url is not None
    try:
        with psycopg.connect(url, connect_timeout=5, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError as exc:
        unavailable("PostgreSQL", str(exc))
    yield url


@pytest.fixture(scope="session")
def pg_url(pg_server_url: str) -> Iterator[str]:
    """A fresh database for this session, migrated, with a 384-d embedding column (the fake and local models)."""
    from shared.migrate import ensure_embedding_column, migrate

    with scratch_database(pg_server_url, "cmsrag_test") as url:
        with psycopg.connect(url, autocommit=True) as conn:
            try:
                migrate(conn)
            except psycopg.errors.FeatureNotSupported as exc:
                unavailable("pgvector", str(exc))
            ensure_embedding_column(conn, "fake:fake-384", 384)
        yield url


@pytest.fixture
def unmigrated_url(pg_server_url: str) -> Iterator[str]:
    """An empty database on the same server: what a deployment sees before `cmsrag migrate` has run."""
    with scratch_database(pg_server_url, "cmsrag_unmigrated") as url:
        yield url


@contextmanager
def emptied(url: str, max_size: int) -> Iterator[Database]:
    """A pool on `url` whose tables were just emptied: each test starts from nothing."""
    database = Database(url, max_size=max_size).open()
    try:
        with database.connection() as conn:
            conn.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
        yield database
    finally:
        database.close()


@pytest.fixture
def db(pg_url: str) -> Iterator[Database]:
    with emptied(pg_url, max_size=12) as database:
        yield database


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    url = os.environ.get("RABBITMQ_URL") or DEFAULT_RABBITMQ
    import pika

    try:
        pika.BlockingConnection(pika.URLParameters(url + ("&" if "?" in url else "?") + "connection_attempts=1"
                                                   "&socket_timeout=3")).close()
    except Exception as exc:
        unavailable("RabbitMQ", f"{url.split('@')[-1]}: {exc.__class__.__name__} {exc}")
    return url


def delete_queues(url: str, prefix: str) -> None:
    import pika

    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        ch = conn.channel()
        for base in ("documents", "backfill"):
            for suffix in ("", ".DQ", ".XQ"):
                ch.queue_delete(f"{prefix}.{base}{suffix}")
    finally:
        conn.close()


@pytest.fixture
def make_settings(pg_url: str, tmp_path: Path) -> Callable[..., Settings]:
    """Settings for a test: the session database, the fake embedder, fast retries, a `files` site in tmp_path."""
    site_dir = tmp_path / "site"
    site_dir.mkdir(exist_ok=True)

    def make(**overrides: Any) -> Settings:
        base = Settings(
            sites=(SiteConfig(name="docs", kind="files", path=site_dir, url="https://example.org/docs/"),),
            database_url=pg_url, data_dir=tmp_path / ".cmsrag", embedder="fake", embed_model="fake-384",
            queue_prefix=f"t{uuid.uuid4().hex[:10]}", min_backoff_ms=10, max_backoff_ms=50, max_retries=2,
            worker_threads=2, http_retries=0, http_timeout=2.0,
            # limits are tested where they are the point; the fake embedder's similarity scale is its own
            query=QuerySettings(public_rate=Rate(100_000, 10_000), min_similarity=0.2),
        )
        return dataclasses.replace(base, **overrides)

    return make


@pytest.fixture
def site_dir(tmp_path: Path) -> Path:
    path = tmp_path / "site"
    path.mkdir(exist_ok=True)
    return path
