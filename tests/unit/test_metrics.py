"""The metric helpers as tables: webhook outcomes, embedding cost, what an answer's `done` event counts, and
docs/metrics.md naming exactly the metrics shared/metrics.py defines."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

from shared import metrics
from shared.embedders.pricing import price_per_million

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.mark.parametrize(("status", "outcome"), [
    (202, "accepted"), (200, "duplicate"), (401, "bad_signature"), (503, "unavailable_503"),
    (400, "rejected"), (404, "rejected"), (413, "rejected"), (415, "rejected"), (422, "rejected"), (500, "error"),
])
def test_a_webhook_status_maps_to_one_outcome(status, outcome):
    before = value("cmsrag_webhooks_total", site="s", event="e", outcome=outcome)
    metrics.webhook("s", "e", status)
    assert value("cmsrag_webhooks_total", site="s", event="e", outcome=outcome) - before == 1


@pytest.mark.parametrize(("model", "price"), [
    ("openai:text-embedding-3-small", 0.02), ("openai:text-embedding-3-small@512", 0.02),
    ("openai:text-embedding-3-large", 0.13), ("local:all-MiniLM-L6-v2", 0.0), ("compat:nomic-embed-text", 0.0),
    ("fake:fake-384", 0.0), ("openai:some-future-model", 0.0),
])
def test_embedding_prices_come_from_the_table_and_local_models_cost_nothing(model, price):
    assert price_per_million(model) == price


def test_an_embedding_call_counts_its_chunks_tokens_and_cost():
    model = "openai:text-embedding-3-small@256"
    names = ("cmsrag_embedding_calls_total", "cmsrag_embedding_tokens_total", "cmsrag_embedding_cost_usd_total")
    before = [value(n, model=model) for n in names] + [value("cmsrag_embedding_chunks_total", model=model, source=s)
                                                       for s in ("model", "cache")]
    metrics.embedded(model, embedded=4, reused=6, tokens=500_000)
    metrics.embedded(model, embedded=0, reused=3, tokens=0)  # all cached: no call
    after = [value(n, model=model) for n in names] + [value("cmsrag_embedding_chunks_total", model=model, source=s)
                                                      for s in ("model", "cache")]
    assert [a - b for a, b in zip(after, before, strict=True)] == pytest.approx([1, 500_000, 0.01, 4, 9])


DONE = {"mode": "openai", "model": "gpt-4o-mini", "refused": False, "cached": False, "fallback": False,
        "usage": {"input_tokens": 1200, "output_tokens": 80, "cost_usd": 0.000228},
        "timings": {"retrieval_ms": 40.0, "first_token_ms": 350.0, "total_ms": 900.0}}


@pytest.mark.parametrize(("done", "result", "tokens", "first_token", "fallbacks"), [
    (DONE, "answered", (1200, 80), 1, 0),
    ({**DONE, "refused": True, "usage": {"input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0},
      "timings": {"retrieval_ms": 5.0, "total_ms": 6.0}}, "refused", (0, 0), 0, 0),
    ({**DONE, "cached": True, "usage": {"input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0},
      "timings": {"retrieval_ms": 5.0, "total_ms": 6.0}}, "answered", (0, 0), 0, 0),
    ({**DONE, "fallback": True}, "answered", (1200, 80), 1, 1),
])
def test_the_done_event_counts_its_result_tokens_cost_and_timings(done, result, tokens, first_token, fallbacks):
    labels = {"provider": "openai", "model": "gpt-4o-mini"}

    def read() -> list[float]:
        return [value("cmsrag_answers_total", provider="openai", result=result),
                value("cmsrag_llm_tokens_total", direction="input", **labels),
                value("cmsrag_llm_tokens_total", direction="output", **labels),
                value("cmsrag_llm_cost_usd_total", **labels),
                value("cmsrag_retrieval_duration_seconds_count"),
                value("cmsrag_time_to_first_token_seconds_count", provider="openai"),
                value("cmsrag_answer_fallbacks_total")]

    before = read()
    metrics.answer_done(done)
    moved = [a - b for a, b in zip(read(), before, strict=True)]
    assert moved == pytest.approx([1, *tokens, done["usage"]["cost_usd"], 1, first_token, fallbacks])


@pytest.mark.parametrize(("bucket", "caller"), [("key:12", "key"), ("ip:203.0.113.9", "public"),
                                                ("ip:2001:db8::/64", "public")])
def test_a_rate_limited_request_is_counted_by_caller_kind_never_by_address(bucket, caller):
    before = value("cmsrag_rate_limited_total", caller=caller)
    metrics.rate_limited(bucket)
    assert value("cmsrag_rate_limited_total", caller=caller) - before == 1


def defined() -> dict[str, tuple[str, ...]]:
    """Every metric shared/metrics.py defines (exported name → labels)."""
    out: dict[str, tuple[str, ...]] = {}
    for obj in vars(metrics).values():
        if isinstance(obj, MetricWrapperBase):
            suffix = "_total" if obj._type == "counter" else ""
            out[obj._name + suffix] = tuple(obj._labelnames)
        elif isinstance(obj, metrics.Family):
            out[obj.name] = obj.labels
    return out


def test_every_metric_is_named_once_and_documented_with_its_labels():
    doc = DOC.read_text(encoding="utf-8")
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `(cmsrag_\w+)` \| \w+ \| ([^|]*) \|", doc, re.M)}
    assert set(rows) == set(defined()), "docs/metrics.md lists exactly the metrics defined in shared/metrics.py"
    for name, labels in defined().items():
        assert name.startswith("cmsrag_")
        assert re.findall(r"`(\w+)`", rows[name]) == list(labels), name
