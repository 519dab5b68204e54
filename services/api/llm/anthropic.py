"""`AnthropicModel`: answers with Claude through the real `anthropic` SDK, streamed.

The SDK retries connection failures, timeouts, 408/409/429 and 5xx (529 "overloaded" included) itself,
`max_retries` times with backoff; whatever is left becomes a `LanguageModelError`: retryable for those same
passing troubles (the API answers 503 and the client may try again later), not retryable for 400/401/403/404,
which a retry cannot fix. An error can also arrive inside the stream (an `error` event, e.g. overloaded, with
HTTP 200); its error type decides. Messages name the provider, model and the API's own explanation; they
never include the API key.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import anthropic
import httpx2  # the SDK's HTTP client: a connection that breaks mid-stream raises its errors unwrapped
from anthropic.types import MessageParam

from services.api import prompt as prompts
from services.api.llm.base import Prompt, Usage
from shared.errors import ConfigError, LanguageModelError
from shared.query_settings import QuerySettings

RETRYABLE_STATUSES = frozenset({408, 409, 429})  # and every 5xx
RETRYABLE_TYPES = frozenset({"overloaded_error", "api_error", "rate_limit_error", "timeout_error"})


class AnthropicModel:
    """A `LanguageModel` over Anthropic's Messages API (or a server that speaks it, via `llm_base_url`)."""

    provider = "anthropic"

    def __init__(self, settings: QuerySettings, *, max_retries: int = 2) -> None:
        if not settings.llm_api_key:
            raise ConfigError(["CMSRAG_LLM=anthropic needs ANTHROPIC_API_KEY (or CMSRAG_LLM_API_KEY)"])
        self.model = settings.llm_model
        self._max_tokens = settings.llm_max_tokens
        self._timeout = settings.llm_timeout
        self._secret = settings.llm_api_key
        self._client = anthropic.Anthropic(
            api_key=settings.llm_api_key, base_url=settings.llm_base_url, timeout=settings.llm_timeout,
            max_retries=max_retries,
        )

    def stream(self, prompt: Prompt) -> Iterator[str | Usage]:
        prompt = prompts.rendered(prompt)
        extra: dict[str, Any] = {"system": prompt.system} if prompt.system else {}
        try:
            with self._client.messages.stream(
                model=self.model, max_tokens=self._max_tokens,
                messages=cast(list[MessageParam], prompt.messages), **extra,
            ) as stream:
                for text in stream.text_stream:
                    if text:
                        yield text
                usage = stream.get_final_message().usage
        except (anthropic.AnthropicError, httpx2.TransportError) as exc:
            raise self._error(exc) from exc
        yield Usage(usage.input_tokens or 0, usage.output_tokens or 0)

    def _error(self, exc: Exception) -> LanguageModelError:
        """The SDK's failure, classified and described without the key."""
        where = f"{self.provider} {self.model}"
        if isinstance(exc, anthropic.APITimeoutError | httpx2.TimeoutException):
            message, retryable = f"{where}: no reply within {self._timeout:g}s", True
        elif isinstance(exc, anthropic.APIConnectionError | httpx2.TransportError):
            message, retryable = f"{where}: connection failed: {exc}", True
        elif isinstance(exc, anthropic.APIStatusError):
            status, kind = exc.status_code, exc.type or "error"
            retryable = status >= 500 or status in RETRYABLE_STATUSES or kind in RETRYABLE_TYPES
            message = f"{where}: {kind} (HTTP {status}): {exc.api_message or exc.message}"
        else:  # an unusable reply, missing credentials: retrying the same request will not help
            message, retryable = f"{where}: {type(exc).__name__}: {exc}", False
        if self._secret:
            message = message.replace(self._secret, "[api key]")
        return LanguageModelError(message, retryable=retryable, provider=self.provider)
