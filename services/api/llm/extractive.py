"""`ExtractiveModel`: answers with no language model at all, by quoting the passages' most relevant sentences.

It is the default so that `make demo`, tests and key-less deployments answer offline, with the same
citations a model gives: each quoted sentence ends with its passage's marker [n]. Relevance is word
overlap with the question (lowercased, lightly stemmed, English stopwords removed), weighted by how rare a
word is among the candidate sentences and boosted by the passage's retrieval rank. When no sentence shares
a content word with the question it refuses with `NO_ANSWER`, exactly as the models are told to.

The answer quotes ONE page, named first ("From “Title”: …"): the page the retrieval favours as a whole
(the greatest summed similarity of its passages — CombSUM over passages — among pages holding a matching
sentence). Sentences picked from four pages read as a collage and cite pages that do not answer; on the
development set this choice raised citation precision from 0.54 to 0.69 and, with the page's title naming
what the quotes are about (a module, a product, a service), correct answers from 0.28 to 0.35
(docs/benchmarks.md).

Passages are untrusted CMS text, but quoting cannot follow instructions; the only harm left is repeating a
planted link, so every URL-looking token is removed from the quoted sentences (the citation carries the
page's own link). Everything is deterministic: ties break on passage and sentence order.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from services.api import prompt as prompts  # the module, not its names: prompt.py imports this package
from services.api.llm.base import Prompt, Usage

MAX_SENTENCES = 4
MAX_WORDS = 120
MIN_WORDS = 4
MIN_SHARE_OF_BEST = 0.3  # a sentence scoring under 30% of the best one adds words, not information
STRONG_SHARE = 0.6  # a later sentence must score this well, or match a question word not yet quoted
NEAR_DUPLICATE = 0.6  # Jaccard similarity of content words
RANK_DECAY = 0.15

# A word list reads better as text than as 130 quoted strings, hence the split.
STOPWORDS = frozenset("""
a about above after again all also am an and any are as at be because been before being below between both
but by can could did do does doing done down during each else few for from further get got had has have
having he her here hers him his how i if in into is it its itself just let me more most my no nor not now of
off on once only or other our ours out over own please same she should so some such tell than that the their
theirs them then there these they this those through to too under until up very was we were what when where
which while who whom why will with would you your yours
""".split())  # noqa: SIM905
_URL_TAIL = r"\S*?(?=[.,;:!?)\]'\"]*(?:\s|$))"  # up to the next space, leaving a sentence's closing punctuation
_URL = re.compile(
    rf"(?:\b(?:https?|ftp|mailto|javascript|data):{_URL_TAIL}|\bwww\.{_URL_TAIL}"
    rf"|(?<![@\w.-])(?:[a-z0-9-]+\.)+(?:com|org|net|edu|gov|io|co|uk|de|fr|info|biz|xyz|app|dev|example)\b{_URL_TAIL})",
    re.IGNORECASE,
)
_BULLET = re.compile(r"^\s*(?:[-*•–>#]+|\d+[.)])\s+")
_SENTENCE_END = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"')\]]))\s+(?=[\"'(\[]?[A-Z0-9])")
_ABBREVIATION = re.compile(r"\b(?:e\.g|i\.e|etc|vs|Dr|Mr|Mrs|Ms|St|No|approx)\.$", re.IGNORECASE)
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
# Tried in order, the first that matches wins; the lookbehinds keep short words (news, bed, sing) whole.
_SUFFIXES = tuple((re.compile(pattern), replacement) for pattern, replacement in (
    (r"(?<=\w{2})ies$", "y"), (r"(?<=\w{3})ing$", ""), (r"(?<=\w{3})(?<!e)ed$", ""),
    (r"(?<=\w{2}[sxzh])es$", ""), (r"(?<=\w{3})(?<!s)s$", ""),
))
_DOUBLED = re.compile(r"(?<=\w{2})([^lsz])\1$")  # running → runn → run
_FINAL_E = re.compile(r"(?<=\w{3})e$")  # close/closing/closed all → clos
_CODE_CHARS = set("{}[]()<>;=$\\|`~^_/*+&%#")


class Quotable(Protocol):
    """What the answerer reads of a passage (a search `Hit` is one)."""

    @property
    def text(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def url(self) -> str: ...
    @property
    def similarity(self) -> float: ...


@dataclass(frozen=True)
class _Candidate:
    passage: int  # index into prompt.passages; its marker is passage + 1
    position: int  # sentence order within the passage
    text: str
    words: frozenset[str]


class ExtractiveModel:
    """A `LanguageModel` that quotes; it costs nothing and reports `Usage(0, 0)`."""

    provider = "extractive"
    model = "extractive-v1"

    def stream(self, prompt: Prompt) -> Iterator[str | Usage]:
        answer = compose_answer(prompt.question, prompt.passages)
        words = answer.split(" ")
        yield words[0]
        for word in words[1:]:
            yield " " + word
        yield Usage(0, 0)


def compose_answer(question: str, passages: Sequence[Quotable]) -> str:
    """The answer for `question` from passages in rank order, or `NO_ANSWER`."""
    asked = content_words(question)
    candidates = [
        _Candidate(i, j, sentence, content_words(sentence))
        for i, passage in enumerate(passages)
        for j, sentence in enumerate(split_sentences(passage.text))
    ]
    scored = [(s, c) for c in candidates if (s := _score(c, asked, candidates)) > 0]
    if not scored:
        return prompts.NO_ANSWER
    page = _chosen_page(passages, {passages[c.passage].url for _, c in scored})
    scored = [(s, c) for s, c in scored if passages[c.passage].url == page]
    scored.sort(key=lambda sc: (-sc[0], sc[1].passage, sc[1].position))
    best = scored[0][0]
    chosen: list[tuple[float, _Candidate]] = []
    total, covered = 0, frozenset[str]()
    for score, cand in scored:
        size = len(cand.text.split())
        if len(chosen) == MAX_SENTENCES or score < best * MIN_SHARE_OF_BEST:
            break
        adds = score >= best * STRONG_SHARE or bool((cand.words & asked) - covered)
        if chosen and (not adds or total + size > MAX_WORDS or any(_similar(cand, c) for _, c in chosen)):
            continue
        chosen.append((score, cand))
        total, covered = total + size, covered | (cand.words & asked)
    # Readable order: passages by their best sentence, sentences of one passage in page order.
    first_seen = {c.passage: k for k, (_, c) in reversed(list(enumerate(chosen)))}
    chosen.sort(key=lambda sc: (first_seen[sc[1].passage], sc[1].position))
    title = strip_urls(passages[chosen[0][1].passage].title)
    quotes = " ".join(f"{_clip(c.text)} [{c.passage + 1}]" for _, c in chosen)
    return f"From “{title}”: {quotes}" if title else quotes


def _chosen_page(passages: Sequence[Quotable], candidates: set[str]) -> str:
    """Of the pages holding a matching sentence, the one whose passages are most similar in sum (first in
    rank order on a tie)."""
    total: dict[str, float] = {}
    for passage in passages:
        if passage.url in candidates:
            total[passage.url] = total.get(passage.url, 0.0) + passage.similarity
    return max(total, key=lambda url: total[url])  # dicts keep rank order and max keeps the first of equals


def split_sentences(text: str) -> list[str]:
    """Quotable sentences of a passage: lines and bullets split, links removed, fragments and code skipped."""
    sentences: list[str] = []
    for line in text.splitlines():
        line = _BULLET.sub("", line).strip()
        pieces: list[str] = []
        for piece in _SENTENCE_END.split(line):
            if pieces and _ABBREVIATION.search(pieces[-1]):
                pieces[-1] = f"{pieces[-1]} {piece}"
            else:
                pieces.append(piece)
        for piece in pieces:
            sentence = strip_urls(piece)
            if len(sentence.split()) >= MIN_WORDS and not _looks_like_code(sentence):
                sentences.append(sentence)
    return sentences


def strip_urls(text: str) -> str:
    """`text` without URLs, `www.` hosts or bare domains, and without the empty brackets they leave."""
    text = _URL.sub("", text)
    text = re.sub(r"[(\[<]\s*(?:(?:see|at|via|visit|here|link|url):?\s*)?[)\]>]", "", text, flags=re.IGNORECASE)
    text = re.sub(r"\s+([,.;:!?])", r"\1", text)
    return " ".join(text.split())


def content_words(text: str) -> frozenset[str]:
    """Stems of the words that carry meaning."""
    return frozenset(stem(w) for w in _WORD.findall(text.lower()) if w not in STOPWORDS and len(w) > 1)


def stem(word: str) -> str:
    """A crude suffix stripper: opens/opened/opening → open, libraries → library, closes/closing → clos."""
    word = word.removesuffix("'s")
    for suffix, replacement in _SUFFIXES:
        word, changed = suffix.subn(replacement, word)
        if changed:
            break
    return _FINAL_E.sub("", _DOUBLED.sub(r"\1", word))


def _score(cand: _Candidate, asked: frozenset[str], candidates: list[_Candidate]) -> float:
    shared = cand.words & asked
    if not shared:
        return 0.0
    # Rare words say more about which sentence answers; a mild length penalty stops long sentences winning
    # by matching more words by chance.
    weight = sum(1.0 + math.log(len(candidates) / sum(w in c.words for c in candidates)) for w in shared)
    return weight / (1.0 + RANK_DECAY * cand.passage) / math.sqrt(max(len(cand.words), 8) / 8)


def _similar(a: _Candidate, b: _Candidate) -> bool:
    union = a.words | b.words
    return bool(union) and len(a.words & b.words) / len(union) >= NEAR_DUPLICATE


def _looks_like_code(sentence: str) -> bool:
    code = sum(ch in _CODE_CHARS for ch in sentence)
    letters = sum(ch.isalpha() for ch in sentence)
    return code > 0.08 * len(sentence) or letters < 0.45 * len(sentence)


def _clip(sentence: str) -> str:
    words = sentence.split()
    return sentence if len(words) <= MAX_WORDS else " ".join(words[:MAX_WORDS]) + "…"
