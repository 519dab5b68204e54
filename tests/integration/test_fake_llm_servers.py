"""The fake OpenAI chat and Anthropic servers satisfy the real SDKs, streaming helpers included.

Later tests of answering rely on these fakes; if an SDK upgrade stops parsing them, this file says so first.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import anthropic
import openai
import pytest
from anthropic.types import MessageParam
from openai.types.chat import ChatCompletionMessageParam

from tests.fakes.anthropic_server import FakeAnthropicServer
from tests.fakes.openai_server import FakeOpenAIServer

QUESTION: list[ChatCompletionMessageParam] = [{"role": "user", "content": "when does the library open"}]
ASK: list[MessageParam] = [{"role": "user", "content": "when does the library open"}]


@pytest.fixture
def openai_server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as srv:
        yield srv


@pytest.fixture
def anthropic_server() -> Iterator[FakeAnthropicServer]:
    with FakeAnthropicServer() as srv:
        yield srv


def openai_client(srv: FakeOpenAIServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0)


def anthropic_client(srv: FakeAnthropicServer, retries: int = 0) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=srv.base_url, api_key="k", max_retries=retries)


def test_openai_chat_answers_deterministically(openai_server: FakeOpenAIServer) -> None:
    reply = openai_client(openai_server).chat.completions.create(model="gpt-4o-mini", messages=QUESTION)
    assert reply.choices[0].message.content == "You asked: when does the library open"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None and reply.usage.completion_tokens == 7


def test_openai_streaming_yields_the_same_text_in_pieces(openai_server: FakeOpenAIServer) -> None:
    stream = openai_client(openai_server).chat.completions.create(
        model="gpt-4o-mini", messages=QUESTION, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    pieces = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert len(pieces) > 3
    assert "".join(pieces) == "You asked: when does the library open"
    assert chunks[-1].usage is not None


def test_openai_stream_helper_assembles_the_final_completion(openai_server: FakeOpenAIServer) -> None:
    with openai_client(openai_server).chat.completions.stream(model="gpt-4o-mini", messages=QUESTION) as stream:
        deltas = [e.delta for e in stream if e.type == "content.delta"]
        final = stream.get_final_completion()
    assert "".join(deltas) == final.choices[0].message.content == "You asked: when does the library open"


def test_anthropic_messages_answer_and_stop_at_max_tokens(anthropic_server: FakeAnthropicServer) -> None:
    client = anthropic_client(anthropic_server)
    full = client.messages.create(model="claude-x", max_tokens=100, messages=ASK)
    assert full.content[0].type == "text"
    assert (full.content[0].text, full.stop_reason) == ("You asked: when does the library open", "end_turn")
    cut = client.messages.create(model="claude-x", max_tokens=2, messages=ASK)
    assert cut.content[0].type == "text"
    assert (cut.content[0].text, cut.stop_reason) == ("You asked:", "max_tokens")


def test_anthropic_stream_helper_gets_text_and_final_message(anthropic_server: FakeAnthropicServer) -> None:
    with anthropic_client(anthropic_server).messages.stream(
        model="claude-x", max_tokens=100, messages=ASK
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "You asked: when does the library open"
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 7


def test_injected_failures_reach_the_sdk_as_its_own_errors(
    openai_server: FakeOpenAIServer, anthropic_server: FakeAnthropicServer
) -> None:
    openai_server.fail_next(429)
    with pytest.raises(openai.RateLimitError):
        openai_client(openai_server).chat.completions.create(model="m", messages=QUESTION)
    anthropic_server.fail_next(529, n=2)
    with pytest.raises(anthropic.InternalServerError, match="overloaded_error"):
        anthropic_client(anthropic_server, retries=1).messages.create(model="m", max_tokens=9, messages=ASK)
    assert anthropic_server.requests["/v1/messages"] == 2
    assert anthropic_client(anthropic_server).messages.create(model="m", max_tokens=9, messages=ASK)


def test_poisoned_requests_fail_with_400_and_the_reason(anthropic_server: FakeAnthropicServer) -> None:
    anthropic_server.poison.append("library")
    with pytest.raises(anthropic.BadRequestError, match="poisoned input"):
        anthropic_client(anthropic_server).messages.create(model="m", max_tokens=9, messages=ASK)


def test_latency_delays_every_reply(openai_server: FakeOpenAIServer) -> None:
    openai_server.latency = 0.2
    started = time.perf_counter()
    openai_client(openai_server).embeddings.create(model="text-embedding-3-small", input=["x"])
    assert time.perf_counter() - started >= 0.2
    assert openai_server.requests == {"/v1/embeddings": 1}
