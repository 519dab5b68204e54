"""`LocalEmbedder` with the real bundled all-MiniLM-L6-v2, offline."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from shared.embedders.local import LocalEmbedder
from shared.errors import ConfigError, PermanentError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def embedder() -> LocalEmbedder:
    return LocalEmbedder(batch_size=8)


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_vectors_have_384_unit_length_dimensions(embedder: LocalEmbedder) -> None:
    vectors = embedder.embed(["The library opens at nine.", "Bins are collected on Tuesdays."])
    assert embedder.dimensions == 384
    assert embedder.model_id == "local:all-MiniLM-L6-v2"
    for vector in vectors:
        assert len(vector) == 384
        assert all(isinstance(x, float) for x in vector)
        assert math.isclose(math.sqrt(sum(x * x for x in vector)), 1.0, rel_tol=1e-5)


def test_similar_sentences_are_closer_than_unrelated_ones(embedder: LocalEmbedder) -> None:
    query, paraphrase, unrelated = embedder.embed([
        "When does the public library open?",
        "Opening hours of the city library",
        "How to apply for a residents' parking permit",
    ])
    assert cosine(query, paraphrase) > cosine(query, unrelated) + 0.2


def test_a_text_gets_the_same_vector_alone_or_in_a_padded_batch(embedder: LocalEmbedder) -> None:
    text = "Opening hours of the city library"
    [alone] = embedder.embed([text])
    batch = embedder.embed(["a much longer sentence " * 10, text, "short"] * 4)
    assert batch[1] == pytest.approx(alone, abs=1e-5)
    assert batch[10] == pytest.approx(alone, abs=1e-5)


def test_token_counts_include_cls_and_sep_and_are_never_truncated(embedder: LocalEmbedder) -> None:
    assert embedder.count_tokens("hello world") == 4  # [CLS] hello world [SEP]
    assert embedder.count_tokens("") == 2
    long_text = "word " * 600
    assert embedder.count_tokens(long_text) == 602
    model_tokenizer = embedder._load_model().tokenizer
    sample = "Internationalisation of the municipality's e-services, 2024 edition."
    assert embedder.count_tokens(sample) == len(model_tokenizer(sample)["input_ids"])


def test_the_input_limit_is_the_models_max_seq_length(embedder: LocalEmbedder) -> None:
    assert embedder.max_input_tokens == embedder._load_model().max_seq_length == 256
    assert embedder.max_batch_inputs == 8


def test_an_input_at_the_limit_is_embedded_and_one_over_is_refused(embedder: LocalEmbedder) -> None:
    at_limit = " ".join(["word"] * 254)
    assert embedder.count_tokens(at_limit) == 256
    assert len(embedder.embed([at_limit])) == 1
    with pytest.raises(PermanentError, match=r"input 1 has 257 tokens, over local:all-MiniLM-L6-v2's limit of 256"):
        embedder.embed(["fine", at_limit + " word"])


def test_an_empty_list_gives_an_empty_list(embedder: LocalEmbedder) -> None:
    assert embedder.embed([]) == []


def test_a_missing_model_folder_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="neither 'all-MiniLM-L6-v2' nor a local model folder"):
        LocalEmbedder(model_name="/nonexistent/model")


def test_counting_tokens_does_not_load_torch() -> None:
    code = (
        "import sys\n"
        "from shared.embedders.local import LocalEmbedder\n"
        "e = LocalEmbedder()\n"
        "assert e.count_tokens('hello world') == 4 and e.max_input_tokens == 256\n"
        "print('torch' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "False"
