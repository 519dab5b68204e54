"""The `Embedder` interface and the factory that picks an implementation from settings.

Implementations: `LocalEmbedder` (sentence-transformers, bundled all-MiniLM-L6-v2, the default),
`OpenAIEmbedder` (OpenAI or any OpenAI-compatible server via `base_url`), and `FakeEmbedder`
(deterministic, for unit tests only). Each knows its own input limit so the chunker can respect it:
silent truncation by the model would make a chunk's tail unsearchable.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from shared.settings import Settings


class Embedder(Protocol):
    """Turns texts into vectors. Implementations must be thread-safe for `embed` calls."""

    @property
    def model_id(self) -> str:
        """Stable id stored with every vector: `local:all-MiniLM-L6-v2`, `openai:text-embedding-3-small@512`."""
        ...

    @property
    def dimensions(self) -> int: ...

    @property
    def max_input_tokens(self) -> int:
        """The most tokens (in the model's own tokenizer) one input may have before the model truncates it."""
        ...

    @property
    def max_batch_inputs(self) -> int: ...

    @property
    def max_batch_tokens(self) -> int: ...

    def count_tokens(self, text: str) -> int:
        """Tokens `text` takes in the model's own tokenizer (special tokens included)."""
        ...

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, in order. Raises `TransientError` or `PermanentError` (stage `embed`)."""
        ...


def make_embedder(settings: Settings) -> Embedder:
    """Build the embedder the settings name. Heavy imports happen only for the one chosen."""
    if settings.embedder == "fake":
        from shared.embedders.fake import FakeEmbedder

        return FakeEmbedder(dimensions=settings.embed_dimensions or 384)
    if settings.embedder == "local":
        from shared.embedders.local import LocalEmbedder

        return LocalEmbedder(model_name=settings.embed_model, batch_size=settings.embed_batch_size)
    from shared.embedders.openai import OpenAIEmbedder

    return OpenAIEmbedder(
        model=settings.embed_model,
        api_key=settings.embed_api_key or "not-needed",
        base_url=settings.embed_base_url,
        dimensions=settings.embed_dimensions,
        timeout=settings.http_timeout,
        compatible=settings.embedder == "openai-compatible",
    )
