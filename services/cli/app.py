"""What a CLI command needs, built lazily and once: settings, database, embedder, broker, actors, queue.

Commands that only read the database never load the embedding model or connect to RabbitMQ.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import dramatiq

from services.embedder.actors import Actors, Runtime, declare_actors
from services.embedder.broker import make_broker
from services.embedder.queue import IndexQueue
from shared.db import Database, database_url
from shared.embedders import Embedder, make_embedder
from shared.errors import IndexMismatch
from shared.migrate import ensure_embedding_column, index_config, migrate
from shared.settings import Settings

if TYPE_CHECKING:
    from services.api.answer import Asker


class App:
    def __init__(self, settings: Settings, *, connect_broker_now: bool = True) -> None:
        self.settings = settings
        self.connect_broker_now = connect_broker_now

    @functools.cached_property
    def db(self) -> Database:
        # A worker thread holds one connection for its document's lock and takes more while it works.
        return Database(database_url(self.settings), max_size=max(8, 2 * self.settings.worker_threads + 2)).open()

    @functools.cached_property
    def embedder(self) -> Embedder:
        return make_embedder(self.settings)

    @functools.cached_property
    def runtime(self) -> Runtime:
        return Runtime(self.settings, self.db, pipeline_factory=self._pipeline)

    def _pipeline(self) -> Any:
        from services.embedder.pipeline import Pipeline

        self.check_index()
        return Pipeline(self.settings, self.db, self.embedder)

    @functools.cached_property
    def broker(self) -> dramatiq.Broker:
        return make_broker(self.settings, connect_now=self.connect_broker_now)

    @functools.cached_property
    def actors(self) -> Actors:
        return declare_actors(self.broker, self.runtime)

    @functools.cached_property
    def queue(self) -> IndexQueue:
        return IndexQueue(self.db, self.actors)

    @functools.cached_property
    def asker(self) -> Asker:
        """The query side's answerer (services/api/answer.py) with the configured model and answer cache."""
        from services.api.answer import Asker
        from services.api.cache import AnswerCache
        from services.api.llm import make_language_model

        q = self.settings.query
        return Asker(self.settings, self.db, self.embedder, make_language_model(q),
                     AnswerCache(self.db, q.answer_cache_ttl), vector_type=self.check_index())

    @property
    def dev_mode(self) -> bool:
        """True when the queue is in memory: work must be done by this process before it exits."""
        return not self.settings.rabbitmq_url

    def receiver(self) -> Any:
        """The webhook receiver's Flask app (services/ingest), sharing this context's database and queue."""
        from services.ingest.receiver import create_app

        def ready() -> None:
            if not self.dev_mode:
                self.broker.connection  # type: ignore[attr-defined]  # noqa: B018  # raises when RabbitMQ is down

        return create_app(self.settings, self.db, lambda: self.queue, ready=ready)

    def migrate(self, *, reset_embeddings: bool = False) -> tuple[list[int], str]:
        with self.db.connection() as conn:
            applied = migrate(conn)
            vtype = ensure_embedding_column(conn, self.embedder.model_id, self.embedder.dimensions,
                                            reset=reset_embeddings)
        return applied, vtype

    def check_index(self) -> str:
        """The index's vector type, after checking it was built for the configured model."""
        with self.db.connection() as conn:
            config = index_config(conn)
        if config is None:
            raise IndexMismatch("the database has no cmsrag schema yet: run `cmsrag migrate` first")
        model, dims, vtype = config
        if model != self.embedder.model_id:
            raise IndexMismatch(f"the index was built with {model} ({dims} dimensions) but the settings name "
                                f"{self.embedder.model_id}: run `cmsrag migrate` to see the options")
        return vtype

    def close(self) -> None:
        if "broker" in self.__dict__:
            self.broker.close()
        if "db" in self.__dict__:
            self.db.close()
