"""One contract, every embedder: what the pipeline relies on, checked against the fake and the real ones alike.

The OpenAI embedder runs the real SDK against the local fake server; the local one runs the bundled model
(marked slow). A new implementation joins by adding one `pytest.param`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

from shared.embedders import Embedder
from shared.embedders.fake import FakeEmbedder
from shared.errors import PermanentError
from tests.fakes.openai_server import FakeOpenAIServer

TEXTS = ["When does the library open?", "Bins are collected on Tuesdays.", "Library opening hours", "Parking"]


@pytest.fixture(scope="module", params=[
    "fake",
    "openai",
    "openai-compatible",
    pytest.param("local", marks=pytest.mark.slow),
])
def embedder(request: pytest.FixtureRequest) -> Iterator[Embedder]:
    if request.param == "fake":
        yield FakeEmbedder()
    elif request.param == "local":
        from shared.embedders.local import LocalEmbedder

        yield LocalEmbedder()
    else:
        from shared.embedders.openai import OpenAIEmbedder

        with FakeOpenAIServer() as server:
            if request.param == "openai":
                yield OpenAIEmbedder(model="text-embedding-3-small", api_key="k", base_url=server.base_url,
                                     dimensions=128, max_retries=0)
            else:
                yield OpenAIEmbedder(model="nomic-embed-text", api_key="k", base_url=server.base_url,
                                     compatible=True, max_retries=0)


def test_one_unit_vector_of_the_stated_size_per_text(embedder: Embedder) -> None:
    vectors = embedder.embed(TEXTS)
    assert len(vectors) == len(TEXTS)
    for vector in vectors:
        assert len(vector) == embedder.dimensions
        assert math.isclose(math.sqrt(sum(x * x for x in vector)), 1.0, rel_tol=1e-4)


def test_vectors_follow_the_input_order(embedder: Embedder) -> None:
    forward = embedder.embed(TEXTS)
    backward = embedder.embed(TEXTS[::-1])
    for a, b in zip(forward, backward[::-1], strict=True):
        assert a == pytest.approx(b, abs=1e-5)


def test_related_texts_are_closer_than_unrelated_ones(embedder: Embedder) -> None:
    library_q, bins, library_hours, _ = embedder.embed(TEXTS)
    near = sum(x * y for x, y in zip(library_q, library_hours, strict=True))
    far = sum(x * y for x, y in zip(library_q, bins, strict=True))
    assert near > far


def test_an_empty_list_gives_an_empty_list(embedder: Embedder) -> None:
    assert embedder.embed([]) == []


def test_the_model_id_is_stable_and_names_its_kind(embedder: Embedder) -> None:
    first = embedder.model_id
    embedder.embed(TEXTS[:1])
    assert embedder.model_id == first
    assert first.split(":")[0] in {"fake", "local", "openai", "compat"}


def test_limits_are_consistent(embedder: Embedder) -> None:
    assert embedder.max_input_tokens >= 128
    assert embedder.max_batch_inputs >= 1
    assert embedder.max_batch_tokens >= embedder.max_input_tokens
    assert 0 < embedder.count_tokens("library opening hours") < embedder.count_tokens("library opening hours " * 5)


def test_an_input_over_the_limit_is_refused_not_truncated(embedder: Embedder) -> None:
    too_long = "word " * (embedder.max_input_tokens + 10)
    assert embedder.count_tokens(too_long) > embedder.max_input_tokens
    with pytest.raises(PermanentError) as caught:
        embedder.embed(["fine", too_long])
    assert caught.value.stage == "embed"
