"""Split embedding inputs into requests that respect a provider's per-request limits.

A pure function, kept apart from any client so it can be table-tested: OpenAI rejects a request with more
than 2,048 inputs or 300,000 tokens in total, and a rejected request would fail every document in it.
"""

from __future__ import annotations

from collections.abc import Sequence


def plan_batches(token_counts: Sequence[int], *, max_inputs: int, max_tokens: int) -> list[range]:
    """Consecutive index ranges covering all inputs in order, each within `max_inputs` and `max_tokens`.

    Greedy filling gives the fewest batches possible for consecutive splits. An input that alone exceeds
    `max_tokens` cannot be sent at all: that is the caller's bug (the chunker bounds inputs far lower), so
    it raises `ValueError` rather than sending a request that is bound to fail.
    """
    if max_inputs < 1 or max_tokens < 1:
        raise ValueError(f"limits must be at least 1 (max_inputs={max_inputs}, max_tokens={max_tokens})")
    batches: list[range] = []
    start = 0
    tokens = 0
    for i, count in enumerate(token_counts):
        if count < 0:
            raise ValueError(f"input {i} has a negative token count ({count})")
        if count > max_tokens:
            raise ValueError(f"input {i} has {count} tokens, more than one request may carry ({max_tokens})")
        if i > start and (i - start >= max_inputs or tokens + count > max_tokens):
            batches.append(range(start, i))
            start, tokens = i, 0
        tokens += count
    if start < len(token_counts):
        batches.append(range(start, len(token_counts)))
    return batches
