"""chunk: cut each section into pieces the embedder reads whole, with a header saying where they come from.

Three promises, in order of importance:

1. **No chunk is ever longer than the embedder's own limit.** all-MiniLM-L6-v2 reads 256 word pieces and
   silently drops the rest, which would make a chunk's tail unsearchable. Packing uses tiktoken (fast, one
   tokenizer for every embedder); then each chunk is checked with the embedder's own counter and halved
   until it fits. Korean, Cyrillic, URLs and punctuation runs take two or three word pieces per tiktoken token.
2. **Stable boundaries.** Each section is chunked on its own and small sections are never merged, so editing
   a paragraph changes only its own section's chunks; the others keep their `content_hash` and their
   embeddings are reused.
3. **Readable cuts.** Paragraphs, then lines, then sentences, then token windows (for base64 and other
   "words" with no spaces); consecutive chunks of one section share `overlap` tokens of whole sentences.

`max_tokens` bounds the whole `embed_text` (header included) in tiktoken tokens, so `token_count` never
exceeds it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from services.embedder import text_spans as spans
from shared.errors import PermanentError
from shared.models import Chunk, Section
from shared.tokens import count_tokens, encoding

Span = tuple[int, int]


def chunk(title: str, sections: list[Section], *, max_tokens: int, overlap: int,
          count_model_tokens: Callable[[str], int], model_max_tokens: int) -> list[Chunk]:
    """Chunks of every section in document order, numbered 0..n-1; no sections (or only blank ones) → []."""
    if max_tokens < 8 or model_max_tokens < 8 or overlap < 0:
        raise ValueError(f"need max_tokens >= 8, model_max_tokens >= 8, overlap >= 0; got {max_tokens}, "
                         f"{model_max_tokens}, {overlap}")
    limits = _Limits(max_tokens, model_max_tokens, count_model_tokens, count_model_tokens(""))
    out: list[Chunk] = []
    for section in sections:
        header = _header(title, section.heading_path, limits)
        prefix = f"{header}\n\n" if header else ""
        for text in split_section(section.text, prefix, overlap, limits):
            embed_text = prefix + text
            out.append(Chunk(
                ordinal=len(out),
                text=text,
                embed_text=embed_text,
                heading_path=section.heading_path,
                anchor=section.anchor,
                token_count=count_tokens(embed_text),
                content_hash=hashlib.sha256(embed_text.encode("utf-8")).hexdigest(),
            ))
    return out


@dataclass(frozen=True)
class _Limits:
    max_tokens: int
    model_max_tokens: int
    count_model_tokens: Callable[[str], int]
    model_overhead: int  # what the model's counter gives for "" ([CLS] and [SEP] for BERT models)

    def fits(self, embed_text: str) -> bool:
        return (count_tokens(embed_text) <= self.max_tokens
                and self.count_model_tokens(embed_text) <= self.model_max_tokens)

    def budget(self, text: str, prefix: str) -> int:
        """Tiktoken tokens of text per chunk: `max_tokens` less the header, and less again when this section
        takes more word pieces than tiktoken tokens (Korean ~2.5x, Cyrillic ~2x), so that most chunks fit the
        model on the first try. `_fit` stays the exact check; one count per section keeps the cost linear."""
        room = self.max_tokens - count_tokens(prefix)
        text_tokens = count_tokens(text)
        if text_tokens <= room:
            return max(1, room)  # one chunk, or halves of it: no need to know the ratio
        ratio = max(self.count_model_tokens(text) - self.model_overhead, 1) / text_tokens
        model_room = (self.model_max_tokens - self.count_model_tokens(prefix)) / ratio
        return max(1, min(room, int(model_room)))


def split_section(text: str, prefix: str, overlap: int, limits: _Limits) -> list[str]:
    """One section's chunk texts: verbatim slices of `text`, each fitting both limits once `prefix` is on."""
    start, end = spans.trim(text, 0, len(text))
    if start == end:
        return []
    budget = limits.budget(text[start:end], prefix)
    packed = _pack(text, spans.units(text, start, end, budget), budget, overlap)
    return [text[s:e] for span in packed for s, e in _fit(text, span, prefix, limits)]


def _pack(text: str, units: list[spans.Unit], budget: int, overlap: int) -> list[Span]:
    """Greedy: as many consecutive units as fit; each chunk after the first starts with the previous one's tail."""
    out: list[Span] = []
    i = 0
    while i < len(units):
        start = units[i].start
        if out and overlap:
            room = min(overlap, budget - units[i].tokens - 1)
            tail = spans.tail_start(text, *out[-1], room)
            start = start if tail is None else tail
        used = count_tokens(text[start:units[i].end])
        j = i + 1
        while j < len(units) and used + units[j].tokens + 1 <= budget:
            used += units[j].tokens + 1  # +1: the blank line or space between them, a token at most
            j += 1
        # The sum is an estimate (BPE can merge across a join); take units back while the exact count is over.
        while j > i + 1 and count_tokens(text[start:units[j - 1].end]) > budget:
            j -= 1
        out.append((start, units[j - 1].end))
        i = j
    return out


def _fit(text: str, span: Span, prefix: str, limits: _Limits) -> list[Span]:
    """The span, or its halves (recursively) until each fits both tokenizers' limits."""
    pending, done = [span], []
    while pending:
        s, e = pending.pop()
        if limits.fits(prefix + text[s:e]):
            done.append((s, e))
        elif e - s < 2:
            raise PermanentError(f"one character cannot fit the embedder's limit after its header: {text[s:e]!r}",
                                 stage="chunk")
        else:
            left, right = spans.halve(text, s, e)
            pending += [right, left]
    return done


def _header(title: str, path: tuple[str, ...], limits: _Limits) -> str:
    """`Title > Heading > Subheading`, cut short if it would take more than a quarter of a chunk."""
    header = " > ".join(p for p in (" ".join(title.split()), *path) if p)
    limit = min(limits.max_tokens, limits.model_max_tokens) // 4
    tokens = encoding().encode_ordinary(header)
    while tokens and (len(tokens) > limit or limits.count_model_tokens(header) > limits.model_max_tokens // 4):
        tokens = tokens[:limit] if len(tokens) > limit else tokens[: len(tokens) // 2]
        header = encoding().decode(tokens, errors="ignore").rstrip() + "…" if tokens else ""
    return header
