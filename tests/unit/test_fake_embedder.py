"""The fake embedder is only useful to tests if it is deterministic, normalised, word-sensitive and counted."""

from __future__ import annotations

import math
import threading

import pytest

from shared.embedders.fake import FakeEmbedder, count_word_pieces
from shared.errors import PermanentError


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_vectors_are_deterministic_across_instances() -> None:
    text = "Opening hours of the city library"
    assert FakeEmbedder().embed([text]) == FakeEmbedder().embed([text])


def test_vectors_are_unit_length_even_for_texts_without_words() -> None:
    for vector in FakeEmbedder(dimensions=16).embed(["library hours", "", "?!", "a a a a"]):
        assert len(vector) == 16
        assert math.isclose(math.sqrt(sum(v * v for v in vector)), 1.0, rel_tol=1e-9)


def test_texts_sharing_words_are_closer_than_unrelated_texts() -> None:
    query, related, unrelated = FakeEmbedder().embed(
        ["library opening hours", "When are the library opening hours?", "Parking permits for residents"]
    )
    assert cosine(query, related) > 0.5
    assert cosine(query, related) > cosine(query, unrelated) + 0.3


def test_case_and_punctuation_do_not_change_the_vector() -> None:
    a, b = FakeEmbedder().embed(["Library, hours!", "library hours"])
    assert math.isclose(cosine(a, b), 1.0)


def test_model_id_names_the_dimensions() -> None:
    assert FakeEmbedder().model_id == "fake:fake-384"
    assert FakeEmbedder(dimensions=8).model_id == "fake:fake-8"
    assert FakeEmbedder(dimensions=8).dimensions == 8


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", 2),
        ("hello", 3),
        ("hello, world!", 6),
        ("internationalisation", 2 + 3),
        ("  spaced   out  ", 4),
    ],
)
def test_token_counts_approximate_word_pieces_with_special_tokens(text: str, expected: int) -> None:
    assert FakeEmbedder().count_tokens(text) == count_word_pieces(text) == expected


def test_an_input_over_the_limit_is_refused_not_truncated() -> None:
    embedder = FakeEmbedder()
    too_long = " ".join(["word"] * (embedder.max_input_tokens - 1))  # 255 words + 2 special tokens
    with pytest.raises(PermanentError, match=r"input 1 has 257 tokens") as caught:
        embedder.embed(["fine", too_long])
    assert caught.value.stage == "embed"
    assert embedder.texts_embedded == 0


def test_counters_count_calls_and_texts_across_threads() -> None:
    embedder = FakeEmbedder(dimensions=8)
    threads = [threading.Thread(target=embedder.embed, args=(["a", "b", "c"],)) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (embedder.calls, embedder.texts_embedded) == (20, 60)
    embedder.reset_counts()
    assert (embedder.calls, embedder.texts_embedded) == (0, 0)


def test_batch_limits_fit_the_input_limit() -> None:
    embedder = FakeEmbedder()
    assert embedder.max_batch_tokens >= embedder.max_input_tokens
    assert embedder.max_batch_inputs >= 1
