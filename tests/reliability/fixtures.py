"""Fixtures of the process-level fault scenarios: a database, an embedding API, a CMS, a broker node and a `Stack`.

Workers run as real `cmsrag worker` processes, so everything they need must be reachable from outside this
process: the embedder is `openai-compatible` pointed at the fake OpenAI server (its latency is the knob that
keeps documents in flight long enough for a kill to land mid-work, and it counts every text embedded), and the
index lives in a database of its own whose vector column belongs to that model.

Test modules take these with `from tests.reliability.fixtures import *`.
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from services.cli.app import App
from shared.db import Database
from shared.settings import Settings
from tests.conftest import delete_queues, emptied, scratch_database, unavailable
from tests.fakes.openai_server import FakeOpenAIServer
from tests.reliability.brokernode import NodeError, RabbitNode
from tests.reliability.fakecms import FakeWordPress
from tests.reliability.harness import Workers, child_env

__all__ = ["Embeddings", "Stack", "chaos_db", "chaos_db_url", "create_database", "embeddings", "make_stack",
           "rabbit_node", "wordpress"]
MODEL = "fake-384"
MODEL_ID = f"compat:{MODEL}"
PROBE = "dimension probe"  # what the compatible embedder sends to learn the vector size


class Embeddings(FakeOpenAIServer):
    """The fake OpenAI server, also counting the requests being answered right now."""

    def __init__(self, latency: float = 0.0) -> None:
        super().__init__(latency)
        self.in_flight = 0
        self._flight_lock = threading.Lock()

    def _answer(self, path: str, raw: bytes) -> Any:
        with self._flight_lock:
            self.in_flight += 1
        try:
            return super()._answer(path, raw)
        finally:
            with self._flight_lock:
                self.in_flight -= 1

    def texts(self) -> Counter[str]:
        """How many times each text was sent to be embedded (the size probe left out)."""
        counts: Counter[str] = Counter()
        for body in list(self.bodies):
            given = body.get("input")
            counts.update(t for t in ([given] if isinstance(given, str) else given or []) if t != PROBE)
        return counts


def create_database(server_url: str, name: str) -> str:
    """A new database on `server_url`, migrated, its vector column made for `MODEL_ID`; returns its URL."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    url = psycopg.conninfo.make_conninfo(server_url, dbname=name)
    migrate_for_the_fake_model(url)
    return url


def migrate_for_the_fake_model(url: str) -> None:
    from shared.migrate import ensure_embedding_column, migrate

    with psycopg.connect(url, autocommit=True) as conn:
        migrate(conn)
        ensure_embedding_column(conn, MODEL_ID, 384)


@pytest.fixture(scope="session")
def chaos_db_url(pg_server_url: str) -> Iterator[str]:
    """A database of the suite's own in the session's server."""
    with scratch_database(pg_server_url, "cmsrag_chaos") as url:
        migrate_for_the_fake_model(url)
        yield url


@pytest.fixture
def chaos_db(chaos_db_url: str) -> Iterator[Database]:
    with emptied(chaos_db_url, max_size=4) as database:
        yield database


@pytest.fixture
def embeddings() -> Iterator[Embeddings]:
    with Embeddings() as server:
        yield server


@pytest.fixture
def wordpress() -> Iterator[FakeWordPress]:
    cms = FakeWordPress()
    yield cms
    cms.close()


@pytest.fixture(scope="session")
def rabbit_node() -> Iterator[RabbitNode]:
    """A RabbitMQ node of the suite's own (see brokernode.py), started once: broker faults are played on it."""
    why = RabbitNode.available()
    if why:
        unavailable("a RabbitMQ node of our own", why)
    node = RabbitNode(Path(tempfile.mkdtemp(prefix="cmsrag-chaos-rabbit-")))
    try:
        node.start()
    except (NodeError, OSError) as exc:
        unavailable("a RabbitMQ node of our own", str(exc)[:2000])
    yield node
    node.stop()


class Stack:
    """One test's configuration (the environment every process gets, and the same as `Settings`), its workers,
    and an in-process `App` for what the test itself does as a producer or reads back."""

    def __init__(self, variables: dict[str, str], folder: Path) -> None:
        self.env = child_env(variables)
        self.settings = Settings.from_env(self.env)
        self.workers = Workers(self.env, folder)
        self.app = App(self.settings, connect_broker_now=False)

    @property
    def db(self) -> Database:
        return self.app.db

    def pending(self) -> int:
        """Requests not yet done; -1 while the database cannot say (a pooled connection that died in a restart
        fails once, then the pool replaces it)."""
        try:
            with self.db.connection() as conn:
                row = conn.execute("SELECT count(*) FROM pending").fetchone()
        except psycopg.OperationalError:
            return -1
        return int(row[0]) if row else -1

    def close(self) -> None:
        self.workers.close()
        self.app.close()
        if self.settings.rabbitmq_url:
            # the broker of a fault scenario may be down for good; its queues go with it
            with contextlib.suppress(Exception):
                delete_queues(self.settings.rabbitmq_url, self.settings.queue_prefix)


@pytest.fixture
def make_stack(chaos_db: Database, chaos_db_url: str, embeddings: Embeddings, wordpress: FakeWordPress,
               tmp_path: Path) -> Iterator[Callable[..., Stack]]:
    """`make_stack(broker_url, CMSRAG_MAX_RETRIES="5", …)`: environment variables on top of the suite's defaults."""
    import json

    stacks: list[Stack] = []

    def make(broker_url: str, **variables: str) -> Stack:
        defaults = {
            "DATABASE_URL": chaos_db_url, "RABBITMQ_URL": broker_url,
            "CMSRAG_SITES": json.dumps([wordpress.site()]), "CMSRAG_DATA_DIR": str(tmp_path / "data"),
            "CMSRAG_QUEUE_PREFIX": f"chaos{uuid.uuid4().hex[:8]}", "CMSRAG_EMBEDDER": "openai-compatible",
            "CMSRAG_EMBED_MODEL": MODEL, "CMSRAG_EMBED_BASE_URL": embeddings.base_url,
            "CMSRAG_EMBED_API_KEY": "test-key", "CMSRAG_METRICS_PORT": "0", "CMSRAG_LOG_FORMAT": "json",
            "CMSRAG_MIN_BACKOFF_MS": "50", "CMSRAG_MAX_BACKOFF_MS": "1000", "CMSRAG_MAX_RETRIES": "8",
            "CMSRAG_HTTP_RETRIES": "0", "CMSRAG_HTTP_TIMEOUT": "5",
        }
        stack = Stack({**defaults, **variables}, tmp_path)
        stacks.append(stack)
        return stack

    yield make
    for stack in stacks:
        stack.close()
