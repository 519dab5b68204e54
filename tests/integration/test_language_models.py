"""The real `anthropic` and `openai` SDKs, as cmsrag drives them, against fake servers speaking their wire formats.

One contract runs for every provider: pieces stream in order and join to the server's answer, usage is
counted and priced, passing failures (overload, 5xx, 429, timeouts, a dead server) become retryable
`LanguageModelError`s once the SDK's own retries are spent, and client errors (400, 401…) are not retryable.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest

from services.api.llm import (
    AnthropicModel,
    ExtractiveModel,
    OpenAIChatModel,
    Usage,
    cost_usd,
    make_language_model,
    prices,
)
from services.api.llm.base import LanguageModel, Turn
from services.api.prompt import SYSTEM_PROMPT, build_prompt
from services.api.search import Hit
from shared.errors import ConfigError, LanguageModelError
from shared.query_settings import QuerySettings
from tests.fakes.anthropic_server import FakeAnthropicServer
from tests.fakes.http_server import FakeHTTPServer
from tests.fakes.openai_server import FakeOpenAIServer, split_words

ANSWER = "The central library opens at 9am on weekdays [1] and parking is free for two hours [2]."
SECRET = "sk-test-do-not-print-0123456789"
PASSAGES = [
    Hit(1, "library", "1", "Opening hours", "https://library.example.org/hours", None, ["Visit"],
        "The central library opens at 9am on weekdays.", "h1", 0.9, 1, 1, 0.03),
    Hit(2, "library", "2", "Parking", "https://library.example.org/parking", None, [],
        "Parking is free for the first two hours.", "h2", 0.8, 2, 2, 0.02),
]
PROMPT = build_prompt("When does the library open?", PASSAGES,
                      [Turn("user", "Hello"), Turn("assistant", "Hi! Ask me about the library.")])
MODELS = {"anthropic": "claude-haiku-4-5", "openai": "gpt-4o-mini", "openai-compatible": "llama3.1"}


class NoUsageOpenAIServer(FakeOpenAIServer):
    """An OpenAI-compatible server that ignores `stream_options` and so never reports usage, as some do."""

    def route(self, path: str, body: dict[str, Any]) -> Any:
        body.pop("stream_options", None)
        return super().route(path, body)


@dataclass
class Provider:
    """A fake server and the settings that point a provider's model at it."""

    name: str
    server: FakeHTTPServer

    def settings(self, **changes: Any) -> QuerySettings:
        base_url = getattr(self.server, "base_url", None)
        return replace(QuerySettings(llm=self.name, llm_model=MODELS[self.name], llm_base_url=base_url,
                                     llm_api_key=SECRET), **changes)

    def model(self, **changes: Any) -> LanguageModel:
        return make_language_model(self.settings(**changes))


@pytest.fixture(params=list(MODELS))
def provider(request: pytest.FixtureRequest) -> Iterator[Provider]:
    server: FakeHTTPServer = (FakeAnthropicServer(answer=lambda _: ANSWER) if request.param == "anthropic"
                              else FakeOpenAIServer(answer=lambda _: ANSWER))
    with server:
        yield Provider(request.param, server)


def run(model: LanguageModel) -> tuple[list[str], Usage]:
    items = list(model.stream(PROMPT))
    assert sum(isinstance(i, Usage) for i in items) == 1 and isinstance(items[-1], Usage)
    return [str(i) for i in items[:-1]], items[-1]


def request_path(provider: Provider) -> str:
    return "/v1/messages" if provider.name == "anthropic" else "/v1/chat/completions"


def test_streamed_pieces_arrive_in_order_and_join_to_the_answer(provider: Provider) -> None:
    model = provider.model()
    assert (model.provider, model.model) == (provider.name, MODELS[provider.name])
    pieces, _ = run(model)
    assert pieces == split_words(ANSWER)


def test_usage_is_counted_and_priced(provider: Provider) -> None:
    _, usage = run(provider.model())
    assert usage.output_tokens == len(split_words(ANSWER)) and usage.input_tokens > 50
    price_in, price_out = {"anthropic": (1.0, 5.0), "openai": (0.15, 0.6), "openai-compatible": (0.0, 0.0)}[
        provider.name]
    expected = (usage.input_tokens * price_in + usage.output_tokens * price_out) / 1e6
    assert cost_usd(provider.settings(), MODELS[provider.name], usage) == pytest.approx(expected)


def test_the_request_carries_the_rules_the_passages_and_the_history(provider: Provider) -> None:
    run(provider.model())
    body = provider.server.bodies[-1]
    messages = body["messages"]
    if provider.name == "anthropic":
        assert body["system"] == SYSTEM_PROMPT
    else:
        assert messages.pop(0) == {"role": "system", "content": SYSTEM_PROMPT}
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert '<passage n="2" title="Parking">' in messages[-1]["content"]
    assert body["stream"] is True


def test_the_token_limit_goes_by_the_name_each_server_knows(provider: Provider) -> None:
    run(provider.model(llm_max_tokens=321))
    body = provider.server.bodies[-1]
    name = {"anthropic": "max_tokens", "openai": "max_completion_tokens", "openai-compatible": "max_tokens"}
    assert body[name[provider.name]] == 321
    if provider.name != "anthropic":
        assert body["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("status", [529, 503, 500, 429])
def test_passing_failures_are_retryable_once_the_sdk_has_retried(provider: Provider, status: int) -> None:
    provider.server.fail_next(status, n=3)
    with pytest.raises(LanguageModelError) as caught:
        run(provider.model())
    assert caught.value.retryable and caught.value.provider == provider.name
    assert f"HTTP {status}" in str(caught.value)
    assert provider.server.requests[request_path(provider)] == 3  # the first try and the SDK's 2 retries
    pieces, _ = run(provider.model())  # the failures are spent: the next question is answered
    assert "".join(pieces) == ANSWER


def test_one_passing_failure_is_absorbed_by_the_sdk_retry(provider: Provider) -> None:
    provider.server.fail_next(503)
    pieces, _ = run(provider.model())
    assert "".join(pieces) == ANSWER and provider.server.requests[request_path(provider)] == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_client_errors_are_not_retryable_and_never_show_the_key(provider: Provider, status: int) -> None:
    body = provider.server.error_body(status, f"invalid x-api-key {SECRET}")
    provider.server.fail_next(status, body=body)
    with pytest.raises(LanguageModelError) as caught:
        run(provider.model())
    assert not caught.value.retryable
    assert f"HTTP {status}" in str(caught.value) and "invalid x-api-key" in str(caught.value)
    assert SECRET not in str(caught.value)
    assert provider.server.requests[request_path(provider)] == 1


def test_a_slow_server_times_out_as_a_retryable_error(provider: Provider) -> None:
    provider.server.latency = 0.4
    with pytest.raises(LanguageModelError, match=r"no reply within 0\.1s") as caught:
        run(provider.model(llm_timeout=0.1))
    assert caught.value.retryable


def test_a_server_that_is_down_is_a_retryable_error(provider: Provider) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}" + ("" if provider.name == "anthropic" else "/v1")
    with pytest.raises(LanguageModelError, match="connection failed") as caught:
        run(provider.model(llm_base_url=base))
    assert caught.value.retryable


def test_a_compatible_server_needs_no_key_and_may_report_no_usage() -> None:
    with NoUsageOpenAIServer(answer=lambda _: ANSWER) as server:
        settings = QuerySettings(llm="openai-compatible", llm_model="llama3.1", llm_base_url=server.base_url,
                                 llm_price_input=1.0, llm_price_output=1.0)
        pieces, usage = run(make_language_model(settings))
    assert "".join(pieces) == ANSWER and usage == Usage(0, 0)
    assert cost_usd(settings, "llama3.1", usage) == 0


def test_the_setting_chooses_the_model_and_missing_keys_are_config_errors() -> None:
    assert isinstance(make_language_model(QuerySettings()), ExtractiveModel)
    anthropic = make_language_model(QuerySettings(llm="anthropic", llm_model="claude-haiku-4-5", llm_api_key="k"))
    assert isinstance(anthropic, AnthropicModel) and anthropic.model == "claude-haiku-4-5"
    compatible = make_language_model(QuerySettings(llm="openai-compatible", llm_base_url="http://127.0.0.1:1/v1"))
    assert isinstance(compatible, OpenAIChatModel) and compatible.provider == "openai-compatible"
    for broken in (QuerySettings(llm="anthropic"), QuerySettings(llm="openai"), QuerySettings(llm="openai-compatible"),
                   QuerySettings(llm="gpt")):
        with pytest.raises(ConfigError):
            make_language_model(broken)


@pytest.mark.parametrize(("model", "given", "expected"), [
    ("claude-sonnet-4-5", (None, None), (3.0, 15.0)),
    ("claude-sonnet-4-5-20250929", (None, None), (3.0, 15.0)),
    ("claude-opus-4-1", (None, None), (15.0, 75.0)),
    ("gpt-4o-mini-2024-07-18", (None, None), (0.15, 0.6)),  # the longest family wins, not gpt-4o
    ("gpt-4o", (None, None), (2.5, 10.0)),
    ("gpt-4.1-mini", (None, None), (0.4, 1.6)),
    ("extractive-v1", (None, None), (0.0, 0.0)),
    ("mistral-7b", (None, None), (0.0, 0.0)),
    ("gpt-4o", (1.0, None), (1.0, 10.0)),  # each configured price overrides the table on its own
    ("mistral-7b", (0.2, 0.4), (0.2, 0.4)),
])
def test_prices_come_from_settings_then_the_table(
    model: str, given: tuple[float | None, float | None], expected: tuple[float, float]
) -> None:
    settings = QuerySettings(llm_price_input=given[0], llm_price_output=given[1])
    assert prices(settings, model) == expected


def test_a_million_tokens_each_way_cost_the_two_prices() -> None:
    assert cost_usd(QuerySettings(), "claude-sonnet-4-5", Usage(1_000_000, 1_000_000)) == 18.0
    assert cost_usd(QuerySettings(), "gpt-4o-mini", Usage(2_000, 500)) == pytest.approx(0.0006)
