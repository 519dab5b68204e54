"""Prometheus metrics move by exactly what happened: the real receiver, pipeline, queue, worker and API, read
before and after; and under real gunicorn with several worker processes, none lost and none counted twice.

In-process tests read `prometheus_client.REGISTRY` (single-process mode); the worker and gunicorn tests scrape
`/metrics` over HTTP from a subprocess, as Prometheus does.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from services.api.app import create_app
from services.cli.app import App
from services.cli.indexing import in_process_worker, wait_until_done
from services.embedder import jobs
from services.embedder.backlog import Backlog
from services.embedder.pipeline import Pipeline
from shared.embedders.fake import FakeEmbedder
from shared.errors import PermanentError
from shared.models import DocRef
from shared.query_settings import QuerySettings, Rate
from shared.signing import sign
from shared.sites import SiteConfig
from tests.conftest import delete_queues
from tests.fakes.anthropic_server import FakeAnthropicServer
from tests.fakes.openai_server import FakeOpenAIServer
from tests.integration.test_ask import OFF_TOPIC, QUESTIONS
from tests.integration.test_pipeline import SECTIONS, page, write

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s3cret-for-metrics-0123456789"
WEBHOOK_ROUTE = "/webhooks/<kind>/<site_name>"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples() -> Samples:
    return {(s.name, frozenset(s.labels.items())): s.value for m in REGISTRY.collect() for s in m.samples}


def parse(text: str) -> Samples:
    return {(s.name, frozenset(s.labels.items())): s.value
            for m in text_string_to_metric_families(text) for s in m.samples}


def get(values: Samples, name: str, **labels: str) -> float:
    return values.get((name, frozenset(labels.items())), 0.0)


def moved(before: Samples, name: str, **labels: str) -> float:
    return get(samples(), name, **labels) - get(before, name, **labels)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if result := check():
                return result
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def signed(body: object, webhook_id: str | None = None, secret: str = SECRET) -> dict[str, Any]:
    raw = json.dumps(body).encode()
    return {"data": raw, "headers": {"Content-Type": "application/json",
                                     **sign([secret], webhook_id or f"wh_{uuid.uuid4().hex}", raw)}}


# --- the receiver --------------------------------------------------------------------------------------------
BLOG = SiteConfig(name="blog", kind="wordpress", url="http://127.0.0.1:9", webhook_secrets=(SECRET,))


@pytest.fixture
def receiver(make_settings, rabbitmq_url, db) -> Iterator[Any]:
    settings = make_settings(rabbitmq_url=rabbitmq_url, sites=(BLOG,))
    app = App(settings, connect_broker_now=False)
    yield app.receiver().test_client()
    app.close()
    delete_queues(rabbitmq_url, settings.queue_prefix)


UPDATE = {"event": "updated", "id": "posts:21"}
WEBHOOK_CASES = [
    ("accepted", lambda c: c.post("/webhooks/wordpress/blog", **signed(UPDATE)), 202, ("blog", "updated")),
    ("bad signature", lambda c: c.post("/webhooks/wordpress/blog", **signed(UPDATE, secret="wrong" * 5)), 401,
     ("blog", "unknown")),
    ("unknown site", lambda c: c.post("/webhooks/wordpress/nope", **signed(UPDATE)), 404, ("unknown", "unknown")),
    ("invalid event", lambda c: c.post("/webhooks/wordpress/blog", **signed({"event": "exploded", "id": "posts:1"})),
     422, ("blog", "unknown")),
    ("too large", lambda c: c.post("/webhooks/wordpress/blog", **signed({**UPDATE, "pad": "x" * 70_000})), 413,
     ("blog", "unknown")),
]


@pytest.mark.parametrize(("case", "send", "status", "labels"), WEBHOOK_CASES, ids=[c[0] for c in WEBHOOK_CASES])
def test_each_webhook_is_counted_once_by_site_event_and_outcome(receiver, case, send, status, labels):
    outcome = {202: "accepted", 401: "bad_signature"}.get(status, "rejected")
    before = samples()
    assert send(receiver).status_code == status
    site, event = labels
    assert moved(before, "cmsrag_webhooks_total", site=site, event=event, outcome=outcome) == 1
    assert sum(v - before.get(k, 0.0) for k, v in samples().items() if k[0] == "cmsrag_webhooks_total") == 1
    assert moved(before, "cmsrag_http_request_duration_seconds_count", service="receiver", endpoint=WEBHOOK_ROUTE,
                 method="POST", status_class=f"{status // 100}xx") == 1


def test_a_repeated_delivery_is_counted_as_a_duplicate(receiver):
    before = samples()
    assert receiver.post("/webhooks/wordpress/blog", **signed(UPDATE, "wh_same")).status_code == 202
    assert receiver.post("/webhooks/wordpress/blog", **signed(UPDATE, "wh_same")).status_code == 200
    for outcome in ("accepted", "duplicate"):
        assert moved(before, "cmsrag_webhooks_total", site="blog", event="updated", outcome=outcome) == 1


def test_a_webhook_that_cannot_be_made_durable_is_counted_as_unavailable(make_settings, db):
    down = App(make_settings(rabbitmq_url="amqp://guest:guest@127.0.0.1:1/%2F", sites=(BLOG,)),
               connect_broker_now=False)
    try:
        before = samples()
        assert down.receiver().test_client().post("/webhooks/wordpress/blog", **signed(UPDATE)).status_code == 503
        assert moved(before, "cmsrag_webhooks_total", site="blog", event="updated", outcome="unavailable_503") == 1
    finally:
        down.close()


def test_the_receiver_serves_its_metrics(receiver):
    receiver.post("/webhooks/wordpress/blog", **signed(UPDATE))
    r = receiver.get("/metrics")
    assert r.status_code == 200 and r.mimetype == "text/plain"
    scraped = parse(r.get_data(as_text=True))
    assert get(scraped, "cmsrag_webhooks_total", site="blog", event="updated", outcome="accepted") >= 1
    before = samples()
    receiver.get("/metrics")
    assert not any(k[0].startswith("cmsrag_http_") and v != before.get(k, 0.0) for k, v in samples().items()), \
        "scrapes are not counted as requests"


# --- the pipeline --------------------------------------------------------------------------------------------
@pytest.fixture
def pipeline(make_settings, db) -> Pipeline:
    return Pipeline(make_settings(), db, FakeEmbedder(dimensions=384))


MODEL = "fake:fake-384"


def test_indexing_counts_the_document_its_chunks_stages_embeddings_and_freshness(pipeline, db, site_dir):
    write(site_dir, "a.html", page("A", SECTIONS))
    modified = time.time() - 100
    os.utime(site_dir / "a.html", (modified, modified))
    before = samples()
    outcome = pipeline.sync(DocRef("docs", "a.html"))
    assert (outcome.action, outcome.chunks) == ("indexed", 3)
    assert moved(before, "cmsrag_documents_total", site="docs", action="indexed") == 1
    assert moved(before, "cmsrag_chunks_total", site="docs", action="indexed") == 3
    assert moved(before, "cmsrag_chunks_total", site="docs", action="removed") == 0
    for stage in ("fetch", "clean", "chunk", "embed", "store"):
        assert moved(before, "cmsrag_stage_duration_seconds_count", stage=stage) == 1, stage
        assert moved(before, "cmsrag_stage_duration_seconds_sum", stage=stage) == pytest.approx(
            outcome.timings[stage])
    with db.connection() as conn:
        tokens = conn.execute("SELECT sum(token_count) FROM chunks").fetchone()[0]
    assert moved(before, "cmsrag_embedding_calls_total", model=MODEL) == 1
    assert moved(before, "cmsrag_embedding_chunks_total", model=MODEL, source="model") == 3
    assert moved(before, "cmsrag_embedding_chunks_total", model=MODEL, source="cache") == 0
    assert moved(before, "cmsrag_embedding_tokens_total", model=MODEL) == tokens
    assert moved(before, "cmsrag_embedding_cost_usd_total", model=MODEL) == 0, "a fake (or local) model costs 0"
    assert moved(before, "cmsrag_freshness_lag_seconds_count", site="docs") == 1
    lag = moved(before, "cmsrag_freshness_lag_seconds_sum", site="docs")
    assert 100 <= lag < 100 + 60, lag


def test_edits_and_removals_count_chunks_in_and_out_and_reuse_from_the_cache(pipeline, site_dir):
    write(site_dir, "a.html", page("A", SECTIONS))
    pipeline.sync(DocRef("docs", "a.html"))
    before = samples()
    assert pipeline.sync(DocRef("docs", "a.html")).action == "unchanged"
    assert moved(before, "cmsrag_documents_total", site="docs", action="unchanged") == 1
    assert moved(before, "cmsrag_embedding_calls_total", model=MODEL) == 0
    assert moved(before, "cmsrag_freshness_lag_seconds_count", site="docs") == 0, "nothing new became searchable"

    before = samples()
    write(site_dir, "a.html", page("A", {**SECTIONS, "configure": "Configure it with the blue dial only. " * 8}))
    assert pipeline.sync(DocRef("docs", "a.html")).action == "indexed"
    assert moved(before, "cmsrag_chunks_total", site="docs", action="indexed") == 3
    assert moved(before, "cmsrag_chunks_total", site="docs", action="removed") == 3
    assert moved(before, "cmsrag_embedding_chunks_total", model=MODEL, source="model") == 1
    assert moved(before, "cmsrag_embedding_chunks_total", model=MODEL, source="cache") == 2

    before = samples()
    (site_dir / "a.html").unlink()
    assert pipeline.sync(DocRef("docs", "a.html")).action == "removed"
    assert moved(before, "cmsrag_documents_total", site="docs", action="removed") == 1
    assert moved(before, "cmsrag_chunks_total", site="docs", action="removed") == 3


def test_backfill_counts_documents_but_not_as_freshness_lag(pipeline, site_dir):
    for name in ("b.html", "c.html"):
        write(site_dir, name, page(name, SECTIONS))
    before = samples()
    outcomes = pipeline.sync_batch("docs", ["b.html", "c.html"])
    assert [o.action for o in outcomes] == ["indexed", "indexed"]
    assert moved(before, "cmsrag_documents_total", site="docs", action="indexed") == 2
    assert moved(before, "cmsrag_embedding_calls_total", model=MODEL) == 1, "one call for the whole batch"
    assert moved(before, "cmsrag_freshness_lag_seconds_count", site="docs") == 0


# --- the queue and the worker --------------------------------------------------------------------------------
def test_messages_are_counted_as_succeeded_retried_or_failed(make_settings, rabbitmq_url, db, site_dir):
    down = SiteConfig(name="down", kind="wordpress", url="http://127.0.0.1:9")  # nothing listens on port 9
    docs = make_settings().sites[0]
    settings = make_settings(rabbitmq_url=rabbitmq_url, sites=(docs, down), max_retries=2, max_document_bytes=20_000)
    app = App(settings)
    write(site_dir, "a.html", page("A", SECTIONS))
    write(site_dir, "big.html", page("Big", {"x": "lorem ipsum " * 5000}))
    before = samples()
    try:
        with in_process_worker(app):
            for ref in (DocRef("docs", "a.html"), DocRef("docs", "big.html"), DocRef("down", "posts:1")):
                app.queue.request(ref)
            assert wait_until_done(app, "docs", timeout=60, progress=False)
            assert wait_until_done(app, "down", timeout=60, progress=False)
    finally:
        app.close()
        delete_queues(rabbitmq_url, settings.queue_prefix)
    assert moved(before, "cmsrag_messages_total", actor="sync_document", outcome="succeeded") == 1
    # big.html fails for good at once (permanent); down/posts:1 is tried 1 + max_retries times, then given up
    assert moved(before, "cmsrag_messages_total", actor="sync_document", outcome="retried") == 2
    assert moved(before, "cmsrag_messages_total", actor="sync_document", outcome="failed") == 2


def backlog_samples(collector: Backlog) -> Samples:
    return {(s.name, frozenset(s.labels.items())): s.value for m in collector.collect() for s in m.samples}


def test_the_backlog_reads_pending_failures_and_queues_at_scrape_time(make_settings, rabbitmq_url, db):
    docs, other = make_settings().sites[0], SiteConfig(name="other", kind="files", path=Path("/nonexistent"))
    settings = make_settings(rabbitmq_url=rabbitmq_url, sites=(docs, other))
    app = App(settings)
    collector = Backlog(settings, app.db)
    try:
        app.queue.request(DocRef("docs", "queued.html"))  # declares the documents queue: one message ready
        with app.db.connection() as conn:
            conn.execute("INSERT INTO pending (site, source_id, event, first_requested) "
                         "VALUES ('docs', 'old.html', 'update', now() - interval '120 seconds')")
            jobs.failed(conn, DocRef("docs", "bad.html"), PermanentError("gone", stage="fetch"), attempts=1,
                        started=app.db.now())
        values = backlog_samples(collector)
    finally:
        collector.close()
        app.close()
        delete_queues(rabbitmq_url, settings.queue_prefix)
    documents_q = f"{settings.queue_prefix}.documents"
    assert get(values, "cmsrag_pending_documents", site="docs") == 2
    assert 120 <= get(values, "cmsrag_pending_oldest_age_seconds", site="docs") < 180
    assert get(values, "cmsrag_failures_open", site="docs") == 1
    assert ("cmsrag_pending_documents", frozenset({("site", "other")})) in values, "an idle site reads 0, not absent"
    assert get(values, "cmsrag_pending_oldest_age_seconds", site="other") == 0
    assert get(values, "cmsrag_queue_messages", queue=documents_q, state="ready") == 1
    assert ("cmsrag_queue_messages", frozenset({("queue", documents_q), ("state", "dead")})) in values
    assert get(values, "cmsrag_queue_consumers", queue=documents_q) == 0
    assert get(values, "cmsrag_state_up", source="database") == 1
    assert get(values, "cmsrag_state_up", source="broker") == 1


def test_a_broker_that_is_down_is_reported_without_failing_the_scrape(make_settings, db):
    settings = make_settings(rabbitmq_url="amqp://guest:guest@127.0.0.1:1/%2F")
    app = App(settings, connect_broker_now=False)
    try:
        values = backlog_samples(Backlog(settings, app.db))
    finally:
        app.close()
    assert get(values, "cmsrag_state_up", source="broker") == 0
    assert get(values, "cmsrag_state_up", source="database") == 1
    assert ("cmsrag_pending_documents", frozenset({("site", "docs")})) in values


def cli_env(pg_url: str, tmp_path: Path, rabbitmq_url: str) -> dict[str, str]:
    site = tmp_path / "html"
    site.mkdir(exist_ok=True)
    (site / "kettle.html").write_text("<html><head><title>Kettles</title></head><body><main><h1>Kettles</h1>"
                                      "<h2 id='descaling'>Descaling</h2><p>Descale the kettle with vinegar "
                                      "once a month.</p></main></body></html>")
    sites = [{"name": "docs", "kind": "files", "path": str(site), "url": "https://example.org/"}]
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("CMSRAG_", "DATABASE_URL", "RABBITMQ_URL", "PROMETHEUS_MULTIPROC_DIR"))}
    return {**base, "DATABASE_URL": pg_url, "CMSRAG_SITES": json.dumps(sites), "CMSRAG_EMBEDDER": "fake",
            "CMSRAG_DATA_DIR": str(tmp_path / "data"), "RABBITMQ_URL": rabbitmq_url,
            "CMSRAG_QUEUE_PREFIX": f"met{uuid.uuid4().hex[:8]}"}


def test_the_worker_serves_its_metrics_and_the_backlog_on_its_metrics_port(pg_url, tmp_path, rabbitmq_url, db):
    env, port = cli_env(pg_url, tmp_path, rabbitmq_url), free_port()
    worker = subprocess.Popen([sys.executable, "-m", "services.cli", "worker", "--metrics-port", str(port)], cwd=ROOT,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        wait_for(lambda: requests.get(url, timeout=2).status_code == 200, 120, "the worker's metrics port")
        r = subprocess.run([sys.executable, "-m", "services.cli", "index", "docs", "kettle.html", "--wait",
                            "--timeout", "60"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        scraped = parse(requests.get(url, timeout=5).text)
    finally:
        worker.terminate()
        _, err = worker.communicate(timeout=60)
        delete_queues(rabbitmq_url, env["CMSRAG_QUEUE_PREFIX"])
    assert worker.returncode == 0, err
    assert get(scraped, "cmsrag_messages_total", actor="sync_document", outcome="succeeded") == 1
    assert get(scraped, "cmsrag_documents_total", site="docs", action="indexed") == 1
    assert get(scraped, "cmsrag_pending_documents", site="docs") == 0
    assert get(scraped, "cmsrag_queue_consumers", queue=f"{env['CMSRAG_QUEUE_PREFIX']}.documents") >= 1
    assert get(scraped, "cmsrag_state_up", source="database") == get(scraped, "cmsrag_state_up", source="broker") == 1


def test_a_worker_whose_metrics_port_is_taken_says_so_and_how_to_fix_it(pg_url, tmp_path, rabbitmq_url, db):
    env = cli_env(pg_url, tmp_path, rabbitmq_url)
    try:
        with socket.socket() as taken:
            taken.bind(("0.0.0.0", 0))
            taken.listen()
            r = subprocess.run([sys.executable, "-m", "services.cli", "worker"], cwd=ROOT, capture_output=True,
                               env={**env, "CMSRAG_METRICS_PORT": str(taken.getsockname()[1])}, text=True,
                               timeout=120)
    finally:
        delete_queues(rabbitmq_url, env["CMSRAG_QUEUE_PREFIX"])
    assert r.returncode == 1
    assert "cannot serve metrics on port" in r.stderr and "CMSRAG_METRICS_PORT" in r.stderr


# --- the query API -------------------------------------------------------------------------------------------
@pytest.fixture
def build_api(make_settings, db, site_dir) -> Iterator[Callable[..., Any]]:
    apps: list[App] = []

    def build(**query: Any) -> Any:
        app = App(make_settings(query=QuerySettings(**{"public_rate": Rate(100_000, 10_000), "min_similarity": 0.2,
                                                       **query})))
        apps.append(app)
        if len(apps) == 1:
            write(site_dir, "frob.html", page("Frobnicator guide", SECTIONS))
            Pipeline(app.settings, app.db, app.embedder).sync(DocRef("docs", "frob.html"))
        return create_app(app).test_client()

    yield build
    for a in apps:
        a.close()


def test_api_requests_are_timed_by_route_method_and_status_class(build_api):
    client = build_api()
    before = samples()
    assert client.post("/v1/search", json={"query": "descale the kettle"}).status_code == 200
    assert client.post("/v1/search", json={"query": ""}).status_code == 422
    assert client.get("/v1/nope").status_code == 404
    assert moved(before, "cmsrag_http_request_duration_seconds_count", service="api", endpoint="/v1/search",
                 method="POST", status_class="2xx") == 1
    assert moved(before, "cmsrag_http_request_duration_seconds_count", service="api", endpoint="/v1/search",
                 method="POST", status_class="4xx") == 1
    assert moved(before, "cmsrag_http_request_duration_seconds_count", service="api", endpoint="unmatched",
                 method="GET", status_class="4xx") == 1, "raw paths never become labels"
    assert moved(before, "cmsrag_http_requests_in_progress", service="api") == 0


def test_a_streamed_answer_is_timed_when_its_last_event_is_sent(build_api):
    client = build_api()
    before = samples()
    r = client.post("/v1/ask/stream", json={"question": QUESTIONS[0]}, buffered=True)
    assert r.status_code == 200 and "event: done" in r.get_data(as_text=True)
    assert moved(before, "cmsrag_http_request_duration_seconds_count", service="api", endpoint="/v1/ask/stream",
                 method="POST", status_class="2xx") == 1
    assert moved(before, "cmsrag_http_requests_in_progress", service="api") == 0


def test_the_api_serves_metrics_without_a_key_and_without_a_rate_limit(build_api):
    client = build_api(public_access=False, public_rate=Rate(1, 1))
    assert client.post("/v1/search", json={"query": "kettle"}).status_code == 401
    for _ in range(3):
        r = client.get("/metrics")
        assert r.status_code == 200 and "RateLimit-Limit" not in r.headers
    assert "cmsrag_http_request_duration_seconds_count" in r.get_data(as_text=True)


def test_rate_limited_requests_are_counted_by_caller_kind(build_api):
    client = build_api(public_rate=Rate(1, 1))
    before = samples()
    assert client.post("/v1/search", json={"query": "kettle"}).status_code == 200
    assert client.post("/v1/search", json={"query": "kettle"}).status_code == 429
    assert moved(before, "cmsrag_rate_limited_total", caller="public") == 1
    assert moved(before, "cmsrag_rate_limited_total", caller="key") == 0


def test_answers_count_results_cache_hits_and_time_retrieval_and_first_token(build_api):
    client = build_api()
    before = samples()
    first = client.post("/v1/ask", json={"question": QUESTIONS[0]}).get_json()
    assert not first["refused"] and not first["cached"]
    assert moved(before, "cmsrag_answers_total", provider="extractive", result="answered") == 1
    assert moved(before, "cmsrag_answer_cache_lookups_total", result="miss") == 1
    assert moved(before, "cmsrag_retrieval_duration_seconds_count") == 1
    assert moved(before, "cmsrag_retrieval_duration_seconds_sum") == pytest.approx(
        first["timings"]["retrieval_ms"] / 1000)
    assert moved(before, "cmsrag_time_to_first_token_seconds_count", provider="extractive") == 1

    before = samples()
    assert client.post("/v1/ask", json={"question": QUESTIONS[0]}).get_json()["cached"]
    assert moved(before, "cmsrag_answer_cache_lookups_total", result="hit") == 1
    assert moved(before, "cmsrag_answer_cache_lookups_total", result="miss") == 0
    assert moved(before, "cmsrag_answers_total", provider="extractive", result="answered") == 1
    assert moved(before, "cmsrag_time_to_first_token_seconds_count", provider="extractive") == 0, "no model ran"

    before = samples()
    assert client.post("/v1/ask", json={"question": OFF_TOPIC}).get_json()["refused"]
    assert moved(before, "cmsrag_answers_total", provider="extractive", result="refused") == 1
    assert moved(before, "cmsrag_answers_total", provider="extractive", result="answered") == 0
    assert moved(before, "cmsrag_answer_cache_lookups_total", result="miss") == 0, "a refusal looks nothing up"


def test_model_tokens_and_cost_are_counted_by_provider_and_model(build_api):
    with FakeAnthropicServer(answer=lambda m: "Descale the kettle [1].") as srv:
        client = build_api(llm="anthropic", llm_model="claude-sonnet-4-6", llm_base_url=srv.base_url,
                           llm_api_key="x")
        before = samples()
        done = client.post("/v1/ask", json={"question": QUESTIONS[0]}).get_json()
    labels = {"provider": "anthropic", "model": "claude-sonnet-4-6"}
    assert done["mode"] == "anthropic" and done["usage"]["cost_usd"] > 0
    assert moved(before, "cmsrag_llm_tokens_total", direction="input", **labels) == done["usage"]["input_tokens"]
    assert moved(before, "cmsrag_llm_tokens_total", direction="output", **labels) == done["usage"]["output_tokens"]
    assert moved(before, "cmsrag_llm_cost_usd_total", **labels) == pytest.approx(done["usage"]["cost_usd"])
    assert moved(before, "cmsrag_answers_total", provider="anthropic", result="answered") == 1
    assert moved(before, "cmsrag_time_to_first_token_seconds_count", provider="anthropic") == 1


def test_a_fallback_answer_is_counted(build_api):
    with FakeOpenAIServer() as srv:
        srv.fail_next(503, 10)
        client = build_api(llm="openai-compatible", llm_base_url=srv.base_url, llm_api_key="x", llm_timeout=5)
        before = samples()
        assert client.post("/v1/ask", json={"question": QUESTIONS[0]}).get_json()["fallback"]
    assert moved(before, "cmsrag_answer_fallbacks_total") == 1
    assert moved(before, "cmsrag_answers_total", provider="extractive", result="answered") == 1


# --- several processes under gunicorn ------------------------------------------------------------------------
def worker_pids(master: int) -> set[int]:
    """The live children of the gunicorn master, from /proc."""
    pids = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == master and fields[0] != "Z":
            pids.add(int(stat.parent.name))
    return pids


def file_pids(directory: Path, prefix: str) -> set[int]:
    return {int(p.stem.rsplit("_", 1)[1]) for p in directory.glob(f"{prefix}_*.db")}


def test_under_gunicorn_every_request_is_counted_exactly_once_across_worker_processes(
        pg_url, rabbitmq_url, db, tmp_path):
    """2 workers recycled every 7 requests, then both killed: the counters still read exactly N."""
    n, prefix, multiproc = 40, f"mp{uuid.uuid4().hex[:8]}", tmp_path / "prometheus"
    multiproc.mkdir()
    (multiproc / "counter_999999.db").write_bytes(b"left over from an earlier run")  # must be wiped at start
    sites = [{"name": "blog", "kind": "wordpress", "url": "http://127.0.0.1:9", "webhook_secret": SECRET}]
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CMSRAG_", "DATABASE_URL", "RABBITMQ_URL"))}
    env = {**base, "DATABASE_URL": pg_url, "RABBITMQ_URL": rabbitmq_url, "CMSRAG_SITES": json.dumps(sites),
           "CMSRAG_QUEUE_PREFIX": prefix, "CMSRAG_EMBEDDER": "fake", "CMSRAG_LOG_LEVEL": "WARNING",
           "PROMETHEUS_MULTIPROC_DIR": str(multiproc)}
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "python:services.gunicorn_conf",
                               "-w", "2", "-k", "gthread", "--threads", "2", "--max-requests", "7",
                               "--timeout", "120", "-b", f"127.0.0.1:{port}", "--log-level", "warning",
                               "services.ingest.wsgi:app"], cwd=ROOT, env=env, start_new_session=True)
    stuck = socket.socket()
    try:
        wait_for(lambda: requests.get(f"{base_url}/healthz", timeout=2).ok, 60, "gunicorn")

        def webhook(i: int) -> int:
            body = signed({"event": "updated", "id": f"posts:{i + 1}"})
            return requests.post(f"{base_url}/webhooks/wordpress/blog", timeout=30, **body).status_code

        with ThreadPoolExecutor(4) as pool:
            assert list(pool.map(webhook, range(n))) == [202] * n

        def scrape() -> Samples:
            return parse(requests.get(f"{base_url}/metrics", timeout=10).text)

        accepted = {"site": "blog", "event": "updated", "outcome": "accepted"}
        timed = {"service": "receiver", "endpoint": WEBHOOK_ROUTE, "method": "POST", "status_class": "2xx"}
        for _ in range(4):  # whichever worker answers the scrape, it answers for all of them
            scraped = scrape()
            assert get(scraped, "cmsrag_webhooks_total", **accepted) == n
            assert get(scraped, "cmsrag_http_request_duration_seconds_count", **timed) == n
        assert len(file_pids(multiproc, "counter")) >= 3, "recycled workers' counts are among those summed"
        assert 999999 not in file_pids(multiproc, "counter"), "files of an earlier run are wiped at start"
        wait_for(lambda: file_pids(multiproc, "gauge_livesum") <= worker_pids(server.pid), 10,
                 "child_exit to drop the live gauges of recycled workers")

        # A request that never finishes its body is in progress; then its worker (and the other) dies by SIGKILL.
        stuck.connect(("127.0.0.1", port))
        stuck.sendall(b"POST /webhooks/wordpress/blog HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 100\r\n\r\n{")
        wait_for(lambda: get(scrape(), "cmsrag_http_requests_in_progress", service="receiver") == 1, 10,
                 "the stuck request to be in progress")
        doomed = worker_pids(server.pid)
        for pid in doomed:
            os.kill(pid, signal.SIGKILL)
        wait_for(lambda: len(worker_pids(server.pid) - doomed) == 2, 30, "gunicorn to replace both workers")
        scraped = wait_for(lambda: (s := scrape()) and
                           get(s, "cmsrag_http_requests_in_progress", service="receiver") == 0 and s, 10,
                           "the killed worker's request to stop counting as in progress")
        assert get(scraped, "cmsrag_webhooks_total", **accepted) == n, "a killed worker's counts are kept"
        assert get(scraped, "cmsrag_http_request_duration_seconds_count", **timed) == n
    finally:
        stuck.close()
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        delete_queues(rabbitmq_url, prefix)
