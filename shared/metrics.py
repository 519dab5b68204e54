"""Every Prometheus metric cmsrag exports, defined here and nowhere else, with one helper per event.

Instrumented code calls one helper per event (`webhook(...)`, `document_done(...)`, `answer_done(...)`) and never
touches prometheus_client itself, so the names, labels and buckets below are the whole contract; docs/metrics.md
explains each one. Label values are always bounded: configured site names, stage and action names, Flask route
rules (never raw paths), configured model names.

The metric objects are module globals because that is prometheus_client's model, and what its multiprocess mode
needs: when `PROMETHEUS_MULTIPROC_DIR` is set before prometheus_client is imported (services/gunicorn_conf.py does
it for gunicorn), every process writes its values to files of its own and `/metrics`, whichever worker answers,
sums the files of every worker — dead ones included, so counts survive a recycled worker. Gauges then need a
rule for combining processes; the one gauge kept per process, requests in progress, uses `livesum` (the sum over
live processes: a worker killed mid-request must not leave its request counted forever). The gauges read from
Postgres and RabbitMQ are not per process: they are computed at scrape time (services/embedder/backlog.py).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from shared.embedders.pricing import cost_usd

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from flask import Flask

METRICS_PATH = "/metrics"
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
STAGE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
# from "within seconds" (webhooks) to "the next reconcile" (10 min) to "something is stuck" (hours, days)
FRESHNESS_BUCKETS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 21600.0, 86400.0,
                     604800.0)
ANSWER_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0)

# --- HTTP: the receiver and the API (service="receiver" | "api") ---------------------------------------------
HTTP_DURATION = Histogram("cmsrag_http_request_duration_seconds", "HTTP requests by route and status class; "
                          "streamed responses are timed to their last byte",
                          ["service", "endpoint", "method", "status_class"], buckets=HTTP_BUCKETS)
HTTP_IN_PROGRESS = Gauge("cmsrag_http_requests_in_progress", "HTTP requests being served (live processes only)",
                         ["service"], multiprocess_mode="livesum")

# --- the webhook receiver ------------------------------------------------------------------------------------
WEBHOOKS = Counter("cmsrag_webhooks_total", "Webhook deliveries by site, event and outcome",
                   ["site", "event", "outcome"])

# --- the pipeline (workers) ----------------------------------------------------------------------------------
MESSAGES = Counter("cmsrag_messages_total", "Queue messages handled, by actor and outcome (succeeded, retried, "
                   "failed = given up, skipped)", ["actor", "outcome"])
STAGE_DURATION = Histogram("cmsrag_stage_duration_seconds", "Time one document spent in a pipeline stage",
                           ["stage"], buckets=STAGE_BUCKETS)
DOCUMENTS = Counter("cmsrag_documents_total", "Documents brought in step with their CMS, by what was done",
                    ["site", "action"])
CHUNKS = Counter("cmsrag_chunks_total", "Chunks written to (indexed) or deleted from (removed) the index",
                 ["site", "action"])
EMBEDDING_CALLS = Counter("cmsrag_embedding_calls_total", "Calls to the embedding model", ["model"])
EMBEDDING_TOKENS = Counter("cmsrag_embedding_tokens_total", "Tokens sent to the embedding model (cl100k count)",
                           ["model"])
EMBEDDING_CHUNKS = Counter("cmsrag_embedding_chunks_total", "Chunks given a vector, by the model or from the cache",
                           ["model", "source"])
EMBEDDING_COST = Counter("cmsrag_embedding_cost_usd_total", "Estimated embedding cost in USD (0 for local models)",
                         ["model"])
FRESHNESS_LAG = Histogram("cmsrag_freshness_lag_seconds", "CMS modified time to searchable, per document indexed "
                          "from a webhook, reconcile or single request", ["site"], buckets=FRESHNESS_BUCKETS)

# --- the query API -------------------------------------------------------------------------------------------
RETRIEVAL = Histogram("cmsrag_retrieval_duration_seconds", "Retrieval time of an answer (embed the question, "
                      "hybrid search)", buckets=ANSWER_BUCKETS)
FIRST_TOKEN = Histogram("cmsrag_time_to_first_token_seconds", "Request start to the answering model's first token",
                        ["provider"], buckets=ANSWER_BUCKETS)
ANSWERS = Counter("cmsrag_answers_total", "Answers given, by provider and result (answered, refused = "
                  "\"I don't have information\")", ["provider", "result"])
ANSWER_FALLBACKS = Counter("cmsrag_answer_fallbacks_total", "Answers the extractive model gave because the "
                           "configured model failed before its first token")
ANSWER_CACHE = Counter("cmsrag_answer_cache_lookups_total", "Answer cache lookups by result (hit, miss)", ["result"])
LLM_TOKENS = Counter("cmsrag_llm_tokens_total", "Tokens the answering model reported", ["provider", "model",
                                                                                         "direction"])
LLM_COST = Counter("cmsrag_llm_cost_usd_total", "Estimated answering cost in USD", ["provider", "model"])
RATE_LIMITED = Counter("cmsrag_rate_limited_total", "Requests refused with 429, by caller kind (public, key)",
                       ["caller"])


@dataclass(frozen=True)
class Family:
    """A gauge computed at scrape time from Postgres or RabbitMQ rather than counted as events."""

    name: str
    help: str
    labels: tuple[str, ...]


PENDING_DOCUMENTS = Family("cmsrag_pending_documents", "Documents asked for and not yet done", ("site",))
PENDING_OLDEST_AGE = Family("cmsrag_pending_oldest_age_seconds", "Age of the oldest pending document (0: none)",
                            ("site",))
FAILURES_OPEN = Family("cmsrag_failures_open", "Open rows in the failures table", ("site",))
QUEUE_MESSAGES = Family("cmsrag_queue_messages", "Messages in RabbitMQ (ready, delayed = waiting for a retry, "
                        "dead = dead-lettered)", ("queue", "state"))
QUEUE_CONSUMERS = Family("cmsrag_queue_consumers", "Consumers attached to the queue", ("queue",))
STATE_UP = Family("cmsrag_state_up", "1 when the last scrape could read the source (database, broker)", ("source",))
SCRAPE_TIME_GAUGES = (PENDING_DOCUMENTS, PENDING_OLDEST_AGE, FAILURES_OPEN, QUEUE_MESSAGES, QUEUE_CONSUMERS,
                      STATE_UP)

WEBHOOK_OUTCOMES = {202: "accepted", 200: "duplicate", 401: "bad_signature", 503: "unavailable_503"}


# --- one helper per event ------------------------------------------------------------------------------------
def webhook(site: str, event: str, status: int) -> None:
    """A webhook answered with `status`: 202 accepted, 200 duplicate, 401 bad_signature, 503 unavailable_503,
    any other 4xx rejected (unknown site, not JSON, too large, invalid event), 5xx error."""
    outcome = WEBHOOK_OUTCOMES.get(status) or ("rejected" if 400 <= status < 500 else "error")
    WEBHOOKS.labels(site, event, outcome).inc()


def message(actor: str, outcome: str) -> None:
    MESSAGES.labels(actor, outcome).inc()


def document_done(site: str, action: str, timings: Mapping[str, float]) -> None:
    """A document run that completed: its action and the seconds it spent per stage."""
    DOCUMENTS.labels(site, action).inc()
    for stage, seconds in timings.items():
        STAGE_DURATION.labels(stage).observe(seconds)


def chunks_replaced(site: str, *, indexed: int, removed: int) -> None:
    """After a committed write: indexed - removed summed over time is the index's chunk count."""
    if indexed:
        CHUNKS.labels(site, "indexed").inc(indexed)
    if removed:
        CHUNKS.labels(site, "removed").inc(removed)


def embedded(model_id: str, *, embedded: int, reused: int, tokens: int) -> None:
    """One `embed_chunks`: `embedded` texts sent to the model in one call (none when all were cached)."""
    if embedded:
        EMBEDDING_CALLS.labels(model_id).inc()
        EMBEDDING_CHUNKS.labels(model_id, "model").inc(embedded)
        EMBEDDING_TOKENS.labels(model_id).inc(tokens)
        EMBEDDING_COST.labels(model_id).inc(cost_usd(model_id, tokens))
    if reused:
        EMBEDDING_CHUNKS.labels(model_id, "cache").inc(reused)


def freshness_lag(site: str, seconds: float) -> None:
    FRESHNESS_LAG.labels(site).observe(max(0.0, seconds))  # a CMS clock ahead of the database's is not negative lag


def answer_cache(*, hit: bool) -> None:
    ANSWER_CACHE.labels("hit" if hit else "miss").inc()


def answer_done(done: Mapping[str, Any]) -> None:
    """The `done` event of an answer (services/api/answer.py): result, tokens, cost and timings."""
    provider, model = str(done.get("mode")), str(done.get("model"))
    ANSWERS.labels(provider, "refused" if done.get("refused") else "answered").inc()
    if done.get("fallback"):
        ANSWER_FALLBACKS.inc()
    usage, timings = done.get("usage") or {}, done.get("timings") or {}
    for direction in ("input", "output"):
        if tokens := usage.get(f"{direction}_tokens"):
            LLM_TOKENS.labels(provider, model, direction).inc(tokens)
    if cost := usage.get("cost_usd"):
        LLM_COST.labels(provider, model).inc(cost)
    if "retrieval_ms" in timings:
        RETRIEVAL.observe(timings["retrieval_ms"] / 1000)
    if "first_token_ms" in timings:
        FIRST_TOKEN.labels(provider).observe(timings["first_token_ms"] / 1000)


def rate_limited(bucket: str) -> None:
    """A 429; `bucket` is the limiter's key (`key:<id>` or `ip:<address>`), reduced to its kind."""
    RATE_LIMITED.labels("key" if bucket.startswith("key:") else "public").inc()


# --- exposition ----------------------------------------------------------------------------------------------
class Exposition(Collector):
    """What a scrape returns: every process's metrics in multiprocess mode (this process's otherwise), plus
    `extra` collectors (scrape-time gauges). Built once; each scrape collects afresh."""

    def __init__(self, extra: Iterable[Collector] = ()) -> None:
        self.extra = tuple(extra)

    def collect(self) -> Iterator[Metric]:
        if multiprocess_dir():
            from prometheus_client import CollectorRegistry
            from prometheus_client.multiprocess import MultiProcessCollector

            registry = CollectorRegistry()
            MultiProcessCollector(registry)
            yield from registry.collect()
        else:
            yield from REGISTRY.collect()
        for collector in self.extra:
            yield from collector.collect()

    def text(self) -> bytes:
        return generate_latest(self)


def multiprocess_dir() -> str | None:
    """prometheus_client's own switch, read where it is used (it must be set before prometheus_client loads)."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def instrument(app: Flask, service: str, *, enabled: bool = True) -> None:
    """Time every request of `app` but scrapes (`cmsrag_http_*`) and serve `GET /metrics`, outside any auth;
    nothing at all when not `enabled` (`CMSRAG_METRICS=off`: `/metrics` is then a 404). The switch exists to
    measure what the metrics cost (bench/metrics_overhead.py) and for deployments that scrape nothing."""
    if not enabled:
        return
    from flask import Response, g, request

    def start() -> None:
        if request.path != METRICS_PATH:
            g.metrics_started = time.perf_counter()
            HTTP_IN_PROGRESS.labels(service).inc()

    def finish(response: Response) -> Response:
        started = g.pop("metrics_started", None)
        if started is None:
            return response
        rule = request.url_rule.rule if request.url_rule is not None else "unmatched"
        labels = (service, rule, request.method, f"{response.status_code // 100}xx")

        def done() -> None:
            HTTP_DURATION.labels(*labels).observe(time.perf_counter() - started)
            HTTP_IN_PROGRESS.labels(service).dec()

        if response.is_streamed:
            response.call_on_close(done)  # an SSE answer is served when its last event is sent
        else:
            done()
        return response

    # First in line: a request that another hook refuses (401, 429) is timed and counted too.
    app.before_request_funcs.setdefault(None, []).insert(0, start)
    app.after_request(finish)  # after_request hooks run in reverse: registered first, this one runs last
    exposition = Exposition()

    @app.get(METRICS_PATH)
    def metrics() -> Response:
        return Response(exposition.text(), content_type=CONTENT_TYPE_LATEST)


def serve(port: int, extra: Iterable[Collector] = (), addr: str = "0.0.0.0") -> WSGIServer:
    """Serve `/metrics` on `port` in a background thread (the worker); `.shutdown()` stops it. OSError when the
    port is taken."""
    from prometheus_client import start_wsgi_server

    server, _ = start_wsgi_server(port, addr=addr, registry=Exposition(extra))
    return server
