"""`OpenAIEmbedder` with the real `openai` SDK against a local server speaking OpenAI's wire format."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

from shared.embedders.fake import fake_vector
from shared.embedders.openai import OpenAIEmbedder
from shared.errors import ConfigError, PermanentError, TransientError
from tests.fakes.openai_server import FakeOpenAIServer

EMBEDDINGS = "/v1/embeddings"


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as srv:
        yield srv


def make(server: FakeOpenAIServer, **kwargs: object) -> OpenAIEmbedder:
    options: dict = {"model": "text-embedding-3-small", "api_key": "test-key", "base_url": server.base_url,
                     "dimensions": 64, "max_retries": 0}
    options.update(kwargs)
    return OpenAIEmbedder(**options)


def test_vectors_come_back_in_input_order_even_when_the_reply_is_shuffled(server: FakeOpenAIServer) -> None:
    server.reverse_data = True
    texts = ["library hours", "parking permits", "waste collection"]
    vectors = make(server).embed(texts)
    expected = [fake_vector(t, 64) for t in texts]
    assert [[round(x, 5) for x in v] for v in vectors] == [[round(x, 5) for x in v] for v in expected]


def test_base64_replies_are_decoded_to_floats(server: FakeOpenAIServer) -> None:
    [vector] = make(server).embed(["library hours"])
    assert server.bodies[-1]["encoding_format"] == "base64"  # the SDK's default, so the fake answered in base64
    assert all(isinstance(x, float) for x in vector)
    assert math.isclose(math.sqrt(sum(x * x for x in vector)), 1.0, rel_tol=1e-5)


def test_a_large_request_is_split_into_several_within_openais_limits(server: FakeOpenAIServer) -> None:
    texts = [f"chunk number {i} about the library" for i in range(5000)]
    vectors = make(server, dimensions=8).embed(texts)
    assert len(vectors) == 5000
    assert server.requests[EMBEDDINGS] >= 3
    assert server.inputs[EMBEDDINGS] == 5000
    assert max(len(body["input"]) for body in server.bodies) <= 2048
    assert vectors[4999] == pytest.approx(fake_vector(texts[4999], 8), abs=1e-6)


def test_reduced_dimensions_are_sent_and_named_in_the_model_id(server: FakeOpenAIServer) -> None:
    embedder = make(server, dimensions=256)
    [vector] = embedder.embed(["library hours"])
    assert server.bodies[-1]["dimensions"] == 256
    assert len(vector) == embedder.dimensions == 256
    assert embedder.model_id == "openai:text-embedding-3-small@256"


def test_native_dimensions_need_no_parameter_and_no_suffix(server: FakeOpenAIServer) -> None:
    embedder = make(server, dimensions=None)
    assert (embedder.model_id, embedder.dimensions) == ("openai:text-embedding-3-small", 1536)
    [vector] = embedder.embed(["library hours"])
    assert "dimensions" not in server.bodies[-1]
    assert len(vector) == 1536


def test_a_503_that_outlasts_the_sdk_retries_is_transient(server: FakeOpenAIServer) -> None:
    server.fail_next(503, n=3)
    with pytest.raises(TransientError, match="503") as caught:
        make(server, max_retries=2).embed(["library hours"])
    assert caught.value.stage == "embed"
    assert server.requests[EMBEDDINGS] == 3  # the SDK tried three times before giving up


def test_a_503_the_sdk_retries_through_is_invisible(server: FakeOpenAIServer) -> None:
    server.fail_next(503, n=1)
    assert len(make(server, max_retries=1).embed(["library hours"])) == 1


def test_a_429_is_transient(server: FakeOpenAIServer) -> None:
    server.fail_next(429)
    with pytest.raises(TransientError, match="429"):
        make(server).embed(["library hours"])


def test_a_400_is_permanent_and_carries_the_servers_message(server: FakeOpenAIServer) -> None:
    server.poison.append("forbidden words")
    with pytest.raises(PermanentError, match="poisoned input: contains 'forbidden words'") as caught:
        make(server).embed(["fine", "some forbidden words here"])
    assert not isinstance(caught.value, TransientError)
    assert caught.value.stage == "embed"
    assert server.requests[EMBEDDINGS] == 1  # never retried


@pytest.mark.parametrize("status", [401, 403, 404, 422])
def test_client_errors_are_permanent(server: FakeOpenAIServer, status: int) -> None:
    server.fail_next(status)
    with pytest.raises(PermanentError, match=str(status)) as caught:
        make(server).embed(["library hours"])
    assert not isinstance(caught.value, TransientError)


@pytest.mark.parametrize("status", [408, 409, 500, 502, 504])
def test_statuses_the_sdk_would_retry_are_transient(server: FakeOpenAIServer, status: int) -> None:
    server.fail_next(status)
    with pytest.raises(TransientError, match=str(status)):
        make(server).embed(["library hours"])


def test_an_unreachable_server_is_transient() -> None:
    with FakeOpenAIServer() as srv:
        url = srv.base_url
    embedder = OpenAIEmbedder(model="text-embedding-3-small", api_key="k", base_url=url, max_retries=0,
                              timeout=2.0)
    with pytest.raises(TransientError):
        embedder.embed(["library hours"])


def test_inputs_over_the_token_limit_or_empty_are_refused_before_any_request(server: FakeOpenAIServer) -> None:
    embedder = make(server, max_input_tokens=5)
    with pytest.raises(PermanentError, match="input 1 has 8 tokens, over the limit of 5"):
        embedder.embed(["short", "one two three four five six seven eight"])
    with pytest.raises(PermanentError, match="input 0 is empty"):
        embedder.embed([""])
    assert server.requests[EMBEDDINGS] == 0


def test_tokens_are_counted_with_cl100k(server: FakeOpenAIServer) -> None:
    embedder = make(server)
    assert embedder.count_tokens("hello world") == 2
    assert embedder.count_tokens("<|endoftext|>") > 1  # counted as text, not refused as a special token
    assert embedder.max_input_tokens == 8191


def test_compatible_servers_are_probed_once_for_their_dimension(server: FakeOpenAIServer) -> None:
    server.default_dimensions = 48
    embedder = make(server, model="nomic-embed-text", dimensions=None, compatible=True)
    assert embedder.model_id == "compat:nomic-embed-text"
    assert server.requests[EMBEDDINGS] == 0  # nothing is asked until the size is needed
    assert embedder.dimensions == 48
    assert embedder.dimensions == 48
    assert server.requests[EMBEDDINGS] == 1
    assert server.bodies[0]["input"] == ["dimension probe"]
    assert embedder.max_input_tokens == 512
    assert embedder.max_batch_inputs == 32


def test_compatible_requests_stay_within_the_servers_input_cap(server: FakeOpenAIServer) -> None:
    server.max_inputs = 32  # text-embeddings-inference's default --max-client-batch-size
    embedder = make(server, model="bge-small", dimensions=None, compatible=True)
    assert len(embedder.embed([f"text {i}" for i in range(100)])) == 100
    assert server.requests[EMBEDDINGS] == 4


def test_compatible_servers_learn_the_dimension_from_a_normal_call(server: FakeOpenAIServer) -> None:
    embedder = make(server, model="bge-small", dimensions=None, compatible=True)
    embedder.embed(["library hours"])
    assert embedder.dimensions == 384
    assert server.requests[EMBEDDINGS] == 1


def test_compatible_servers_never_get_a_dimensions_parameter(server: FakeOpenAIServer) -> None:
    embedder = make(server, model="bge-small", dimensions=384, compatible=True)
    embedder.embed(["library hours"])
    assert "dimensions" not in server.bodies[-1]


def test_a_reply_of_the_wrong_size_is_permanent(server: FakeOpenAIServer) -> None:
    embedder = make(server, model="bge-small", dimensions=1024, compatible=True)
    with pytest.raises(PermanentError, match="returned 384-dimensional vectors, expected 1024"):
        embedder.embed(["library hours"])


@pytest.mark.parametrize(
    ("model", "dimensions", "problem"),
    [
        ("text-embedding-ada-002", 512, "does not accept"),
        ("text-embedding-3-small", 2000, "must be 1..1536"),
        ("text-embedding-3-large", 0, "must be 1..3072"),
    ],
)
def test_impossible_dimensions_are_a_configuration_error(model: str, dimensions: int, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        OpenAIEmbedder(model=model, api_key="k", dimensions=dimensions)
