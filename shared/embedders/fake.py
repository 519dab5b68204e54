"""`FakeEmbedder`: deterministic bag-of-words vectors, FOR UNIT TESTS ONLY.

It exists so tests of chunking, storage and search run in milliseconds without torch or a network, yet
still behave like an embedder where it matters: texts that share words get nearby vectors (so a search
test can expect the right document first), every input has a token count and a limit (so the chunker's
budget is exercised), and it counts its work (so a test can assert that unchanged chunks were reused
rather than embedded again). Its vectors carry no meaning beyond shared words: never index real content
with it.
"""

from __future__ import annotations

import hashlib
import math
import re
import threading
import unicodedata
from collections.abc import Sequence

from shared.errors import PermanentError

# Words and single punctuation marks: roughly where a WordPiece tokenizer starts a new token.
_PIECES = re.compile(r"\w+|[^\w\s]")
_WORDS = re.compile(r"\w+")
_SPECIAL_TOKENS = 2  # like [CLS] ... [SEP], so budgets computed with the fake match the local model's shape
_CHARS_PER_PIECE = 8  # long, rare words split into several pieces in real tokenizers


def count_word_pieces(text: str) -> int:
    """Approximate WordPiece count: a piece per punctuation mark and per started 8 letters, plus 2."""
    return _SPECIAL_TOKENS + sum(-(-len(piece) // _CHARS_PER_PIECE) for piece in _PIECES.findall(text))


def fake_vector(text: str, dimensions: int) -> list[float]:
    """A unit vector from hashed, case-folded words (signed feature hashing), so shared words mean closeness.

    Also used by the fake OpenAI server, which needs the same closeness without the fake's input limit.
    """
    vector = [0.0] * dimensions
    words = _WORDS.findall(unicodedata.normalize("NFKC", text).casefold())
    # A text with no words still needs a non-zero, deterministic vector to be normalisable.
    for word in words or ["\x00" + text]:
        digest = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "big")
        vector[digest % dimensions] += 1.0 if (digest >> 40) & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vector))
    return [v / norm for v in vector]


class FakeEmbedder:
    """Deterministic embedder for unit tests; `calls` and `texts_embedded` count its work (thread-safe)."""

    max_input_tokens = 256

    def __init__(self, dimensions: int = 384) -> None:
        if dimensions < 1:
            raise ValueError(f"dimensions must be at least 1, got {dimensions}")
        self._dimensions = dimensions
        self._lock = threading.Lock()
        self.calls = 0
        self.texts_embedded = 0

    @property
    def model_id(self) -> str:
        return f"fake:fake-{self._dimensions}"

    @property
    def dimensions(self) -> int:
        return self._dimensions

    @property
    def max_batch_inputs(self) -> int:
        return 64

    @property
    def max_batch_tokens(self) -> int:
        return self.max_batch_inputs * self.max_input_tokens

    def count_tokens(self, text: str) -> int:
        return count_word_pieces(text)

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text; an input over the limit raises `PermanentError`, as the local model does."""
        for i, text in enumerate(texts):
            if (n := self.count_tokens(text)) > self.max_input_tokens:
                raise PermanentError(
                    f"input {i} has {n} tokens, over {self.model_id}'s limit of {self.max_input_tokens}",
                    stage="embed",
                )
        with self._lock:
            self.calls += 1
            self.texts_embedded += len(texts)
        return [fake_vector(text, self._dimensions) for text in texts]

    def reset_counts(self) -> None:
        """Zero the counters, e.g. between the two passes of a "reuse unchanged chunks" test."""
        with self._lock:
            self.calls = 0
            self.texts_embedded = 0
