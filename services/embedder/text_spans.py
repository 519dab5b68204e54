"""Where a text may be cut, as character spans: paragraphs, then lines, then sentences, then token windows.

The chunker works on spans of one section's text rather than on copies of strings, so every chunk is a
verbatim slice of its section (overlap included) and a cut never loses or reorders a character. All the
functions here are linear in the text they are given; pathological input (a 50k-character "word", base64)
ends in token windows, which always make progress.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from typing import NamedTuple

from shared.tokens import count_tokens, encoding

# Separators stop at a line's start so the next piece keeps its indentation (see `trim`).
PARAGRAPH = re.compile(r"\n(?:[ \t]*\n)+")
LINE = re.compile(r"[ \t]*\n")
# After . ! ? … ; and their CJK/Arabic/Devanagari forms (which need no space after them).
SENTENCE = re.compile(r"(?<=[.!?…;])\s+|(?<=[。！？；])\s*|(?<=[؟।])\s+")
SPACE = re.compile(r"\s+")
SENTENCE_OR_LINE = re.compile(f"{SENTENCE.pattern}|{LINE.pattern}")
LEVELS = (PARAGRAPH, LINE, SENTENCE)


class Unit(NamedTuple):
    """A span of the text that fits the budget on its own, with its token count."""

    start: int
    end: int
    tokens: int


def trim(text: str, start: int, end: int) -> tuple[int, int]:
    """The span without surrounding whitespace, but keeping the indentation of a first line (code blocks)."""
    while end > start and text[end - 1].isspace():
        end -= 1
    first = start
    while first < end and text[first].isspace():
        first += 1
    line_start = first
    while line_start > start and text[line_start - 1] in " \t":
        line_start -= 1
    return (line_start if line_start == 0 or text[line_start - 1] == "\n" else first), end


def pieces(text: str, start: int, end: int, pattern: re.Pattern[str]) -> list[tuple[int, int]]:
    """Non-empty trimmed spans between the matches of `pattern` inside [start, end)."""
    spans, pos = [], start
    for m in pattern.finditer(text, start, end):
        if m.end() > pos:  # an empty match at `pos` would make an empty piece
            spans.append(trim(text, pos, m.start()))
            pos = m.end()
    spans.append(trim(text, pos, end))
    return [(s, e) for s, e in spans if e > s]


def units(text: str, start: int, end: int, budget: int, level: int = 0) -> list[Unit]:
    """Split [start, end) at the coarsest boundaries that make every piece fit `budget` tokens."""
    tokens = count_tokens(text[start:end])
    if tokens <= budget:
        return [Unit(start, end, tokens)]
    for depth in range(level, len(LEVELS)):
        parts = pieces(text, start, end, LEVELS[depth])
        if len(parts) > 1:
            return [u for s, e in parts for u in units(text, s, e, budget, depth + 1)]
    return windows(text, start, end, budget)


def windows(text: str, start: int, end: int, budget: int) -> list[Unit]:
    """Cut by tiktoken windows of `budget` tokens, moved back to a space when one is in the window's tail."""
    tokens = encoding().encode_ordinary(text[start:end])
    _, offsets = encoding().decode_with_offsets(tokens)
    out: list[Unit] = []
    i = 0
    while i < len(tokens):
        j = min(i + budget, len(tokens))
        cut = offsets[j] if j < len(tokens) else end - start
        if j < len(tokens):
            space = text.rfind(" ", start + offsets[i] + (cut - offsets[i]) // 2, start + cut)
            cut = space - start if space > start + offsets[i] else cut
            if cut <= offsets[i]:  # several tokens inside one character: move past it
                cut = next((o for o in offsets[j:] if o > offsets[i]), end - start)
        s, e = trim(text, start + offsets[i], start + cut)
        if e > s:
            out.append(Unit(s, e, count_tokens(text[s:e])))
        i = max(bisect_left(offsets, cut), i + 1)
    return out


def halve(text: str, start: int, end: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """Two non-empty halves of a span of at least two characters, cut at the best boundary near its token middle."""
    tokens = encoding().encode_ordinary(text[start:end])
    _, offsets = encoding().decode_with_offsets(tokens)
    n = len(tokens)
    middle = start + (offsets[n // 2] if n > 1 and offsets[n // 2] > 0 else (end - start) // 2)
    low, high = start + (middle - start) // 2, middle + (end - middle) // 2
    for pattern in (*LEVELS, SPACE):
        cuts = [m.start() for m in pattern.finditer(text, low, high) if start < m.start() < end]
        if cuts:
            middle = min(cuts, key=lambda c: abs(c - middle))
            break
    left, right = trim(text, start, middle), trim(text, middle, end)
    if left[1] <= left[0] or right[1] <= right[0]:  # whitespace-only side: cut by characters instead
        middle = start + max(1, (end - start) // 2)
        left, right = (start, middle), (middle, end)
    return left, right


def tail_start(text: str, start: int, end: int, budget: int) -> int | None:
    """Where the last `budget` tokens of [start, end) begin: whole sentences if any fit, else a token tail."""
    if budget <= 0:
        return None
    best = None
    for s, _ in reversed(pieces(text, start, end, SENTENCE_OR_LINE)):
        if s <= start or count_tokens(text[s:end]) > budget:
            break
        best = s
    if best is not None:
        return best
    tokens = encoding().encode_ordinary(text[start:end])
    if len(tokens) <= budget:
        return None
    _, offsets = encoding().decode_with_offsets(tokens)
    cut = start + offsets[len(tokens) - budget]
    space = text.find(" ", cut, end)
    cut = space + 1 if 0 <= space < end - 1 and count_tokens(text[space + 1:end]) * 2 >= budget else cut
    s, e = trim(text, cut, end)
    return s if e > s else None

