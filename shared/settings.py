"""One frozen `Settings`, read from the environment once at start-up and passed in explicitly.

Every bad value is collected and reported together (`ConfigError.problems`), so an operator fixes a
deployment in one go instead of one restart per typo. Sites are data (see `shared.sites`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict

from shared.envreader import EnvReader, at_least_zero, in_range, one_of, positive
from shared.errors import ConfigError
from shared.query_settings import QuerySettings
from shared.sites import SiteConfig, load_sites

PROJECT_ROOT = Path(__file__).resolve().parents[1]
EMBEDDERS = ("local", "openai", "openai-compatible", "fake")
DEFAULT_MODELS = {
    "local": "all-MiniLM-L6-v2",
    "openai": "text-embedding-3-small",
    "openai-compatible": "nomic-embed-text",
    "fake": "fake-384",
}


@dataclass(frozen=True)
class Settings:
    """Everything a cmsrag process needs to know, validated."""

    sites: tuple[SiteConfig, ...]
    database_url: str | None = None
    data_dir: Path = PROJECT_ROOT / ".cmsrag"
    rabbitmq_url: str | None = None
    queue_prefix: str = "cmsrag"
    embedder: str = "local"
    embed_model: str = DEFAULT_MODELS["local"]
    embed_dimensions: int | None = None
    embed_base_url: str | None = None
    embed_api_key: str | None = field(default=None, repr=False)
    embed_batch_size: int = 32
    chunk_tokens: int = 200
    chunk_overlap: int = 32
    max_document_bytes: int = 2_000_000
    http_timeout: float = 10.0
    http_retries: int = 3
    worker_threads: int = 2
    worker_drain_seconds: int = 30  # on SIGTERM, how long in-flight messages may run on before being handed back
    metrics_port: int = 9191  # the worker's /metrics; 0: not served
    metrics_enabled: bool = True  # CMSRAG_METRICS=off: the receiver and the API neither time nor serve /metrics
    max_retries: int = 5
    min_backoff_ms: int = 1_000
    max_backoff_ms: int = 120_000
    log_level: str = "INFO"
    log_format: str = "console"
    query: QuerySettings = field(default_factory=QuerySettings)

    def site(self, name: str) -> SiteConfig:
        """The configured site called `name`, or `UnknownSite` naming the ones that exist."""
        from shared.errors import UnknownSite

        for s in self.sites:
            if s.name == name:
                return s
        raise UnknownSite(name, [s.name for s in self.sites])

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read and validate `CMSRAG_*` (and the usual `DATABASE_URL`, `RABBITMQ_URL`, `OPENAI_*`) variables."""
        env = os.environ if env is None else env
        problems: list[str] = []

        get = EnvReader(env, problems).get

        embed_dimensions: int | None = get("CMSRAG_EMBED_DIMENSIONS", int, 0, in_range(1, 16000)) or None
        embedder = get("CMSRAG_EMBEDDER", str, "local", one_of(*EMBEDDERS))
        try:
            sites = load_sites(env, PROJECT_ROOT)
        except ConfigError as exc:
            problems.extend(exc.problems)
            sites = ()
        data_dir = Path(env.get("CMSRAG_DATA_DIR") or PROJECT_ROOT / ".cmsrag")
        database_url = env.get("DATABASE_URL") or None
        if database_url:
            try:  # a postgresql:// URI or libpq's key=value form, as libpq itself parses them
                conninfo_to_dict(database_url)
            except psycopg.ProgrammingError as exc:
                problems.append(f"DATABASE_URL is not a PostgreSQL connection string (postgresql://…): {exc}")
        rabbitmq_url = env.get("RABBITMQ_URL") or None
        if rabbitmq_url and not rabbitmq_url.startswith(("amqp://", "amqps://")):
            problems.append("RABBITMQ_URL must start with amqp:// or amqps://")
        base_url = env.get("CMSRAG_EMBED_BASE_URL") or env.get("OPENAI_BASE_URL") or None
        api_key = env.get("CMSRAG_EMBED_API_KEY") or env.get("OPENAI_API_KEY") or None
        if embedder == "openai" and not api_key:
            problems.append("CMSRAG_EMBEDDER=openai needs OPENAI_API_KEY (or CMSRAG_EMBED_API_KEY)")
        if embedder == "openai-compatible" and not base_url:
            problems.append("CMSRAG_EMBEDDER=openai-compatible needs CMSRAG_EMBED_BASE_URL (e.g. http://localhost:11434/v1)")
        chunk_tokens = get("CMSRAG_CHUNK_TOKENS", int, 200, in_range(16, 8000))
        chunk_overlap = get("CMSRAG_CHUNK_OVERLAP", int, 32, at_least_zero)
        if chunk_overlap >= chunk_tokens:
            problems.append(f"CMSRAG_CHUNK_OVERLAP ({chunk_overlap}) must be smaller than "
                            f"CMSRAG_CHUNK_TOKENS ({chunk_tokens})")
        min_backoff = get("CMSRAG_MIN_BACKOFF_MS", int, 1_000, positive)
        # RabbitMQ's consumer timeout is 30 min by default; dramatiq holds delayed messages unacked, so the longest
        # backoff must stay far below it or the broker redelivers them (dramatiq issue #827).
        max_backoff = get("CMSRAG_MAX_BACKOFF_MS", int, 120_000,
                          in_range(1, 600_000, "(well below RabbitMQ's consumer timeout)"))
        if min_backoff > max_backoff:
            problems.append("CMSRAG_MIN_BACKOFF_MS must not exceed CMSRAG_MAX_BACKOFF_MS")
        log_level = get("CMSRAG_LOG_LEVEL", str.upper, "INFO", one_of("DEBUG", "INFO", "WARNING", "ERROR"))
        settings = cls(
            sites=sites,
            database_url=database_url,
            data_dir=data_dir,
            rabbitmq_url=rabbitmq_url,
            queue_prefix=get("CMSRAG_QUEUE_PREFIX", str, "cmsrag",
                             lambda v: None if re.fullmatch(r"[A-Za-z0-9_-]+", v) else "letters, digits, - and _ only"),
            embedder=embedder,
            embed_model=env.get("CMSRAG_EMBED_MODEL") or DEFAULT_MODELS.get(embedder, DEFAULT_MODELS["local"]),
            embed_dimensions=embed_dimensions,
            embed_base_url=base_url,
            embed_api_key=api_key,
            embed_batch_size=get("CMSRAG_EMBED_BATCH_SIZE", int, 32, in_range(1, 2048)),
            chunk_tokens=chunk_tokens,
            chunk_overlap=chunk_overlap,
            max_document_bytes=get("CMSRAG_MAX_DOCUMENT_BYTES", int, 2_000_000, positive),
            http_timeout=get("CMSRAG_HTTP_TIMEOUT", float, 10.0, positive),
            http_retries=get("CMSRAG_HTTP_RETRIES", int, 3, at_least_zero),
            worker_threads=get("CMSRAG_WORKER_THREADS", int, 2, in_range(1, 64)),
            worker_drain_seconds=get("CMSRAG_WORKER_DRAIN_SECONDS", int, 30, in_range(1, 3600)),
            metrics_port=get("CMSRAG_METRICS_PORT", int, 9191, in_range(0, 65535, "(0: no metrics port)")),
            metrics_enabled=get("CMSRAG_METRICS", lambda v: v.strip().lower() or "on", "on",
                                one_of("on", "off")) == "on",
            max_retries=get("CMSRAG_MAX_RETRIES", int, 5, at_least_zero),
            min_backoff_ms=min_backoff,
            max_backoff_ms=max_backoff,
            log_level=log_level,
            log_format=get("CMSRAG_LOG_FORMAT", str, "console", one_of("console", "json")),
            query=QuerySettings.from_env(env, problems, [s.url for s in sites if s.url], embedder),
        )
        if problems:
            raise ConfigError(problems)
        return settings
