"""`ScriptedModel`: a named fake language model that streams text a test (or benchmark) decides.

It stands in where the point is what cmsrag does *around* a model (filtering markers and links, caching,
streaming, error events), not the SDKs; those are tested against fake servers speaking their wire formats.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from services.api.llm.base import Prompt, Usage


class ScriptedModel:
    """Streams `script(prompt)` in the given pieces (or word by word); `fail_after` raises after that many."""

    def __init__(self, script: Callable[[Prompt], str | list[str]], *, provider: str = "fake",
                 model: str = "scripted", fail_after: int | None = None, error: Exception | None = None) -> None:
        self.provider, self.model, self.script = provider, model, script
        self.fail_after, self.error = fail_after, error
        self.prompts: list[Prompt] = []

    def stream(self, prompt: Prompt) -> Iterator[str | Usage]:
        self.prompts.append(prompt)
        out = self.script(prompt)
        pieces = out if isinstance(out, list) else [w + " " for w in out.split(" ")]
        for i, piece in enumerate(pieces):
            if self.fail_after is not None and i >= self.fail_after:
                assert self.error is not None
                raise self.error
            yield piece
        yield Usage(input_tokens=len(prompt.question.split()), output_tokens=len(pieces))
