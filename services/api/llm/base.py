"""The answering model's interface: a prompt in, text pieces out (streamed), usage at the end.

Every provider (Anthropic, OpenAI, OpenAI-compatible servers, the model-free extractive answerer) implements
`LanguageModel.stream`, a generator that yields `str` pieces of the answer as they arrive and, last, one
`Usage`. Non-streaming callers join the pieces. Errors are `LanguageModelError` (retryable or not), never an
SDK's own exception, so the API can map them to one `error` event / 502 / 503.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from services.api.search import Hit


@dataclass(frozen=True)
class Turn:
    """An earlier message of the conversation (`role` is user or assistant)."""

    role: str
    content: str


@dataclass(frozen=True)
class Prompt:
    """What a model is asked: the question, the numbered passages ([1] is passages[0]), earlier turns.

    `system` and `messages` are the rendered chat form (services/api/prompt.py); the extractive answerer uses
    `question` and `passages` directly.
    """

    question: str
    passages: list[Hit]
    conversation: list[Turn] = field(default_factory=list)
    system: str = ""
    messages: list[dict[str, str]] = field(default_factory=list)


@dataclass
class Usage:
    """Tokens a request used, as the provider reported them (0 when it reports nothing)."""

    input_tokens: int = 0
    output_tokens: int = 0


class LanguageModel(Protocol):
    """Anything that can answer a `Prompt`; `provider` and `model` name it in responses, logs and metrics."""

    provider: str
    model: str

    def stream(self, prompt: Prompt) -> Iterator[str | Usage]:
        """Yield answer text pieces as they are produced, then exactly one `Usage`."""
        ...
