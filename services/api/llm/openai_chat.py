"""`OpenAIChatModel`: answers through the real `openai` SDK's chat completions, streamed.

One class serves OpenAI itself and "openai-compatible" servers (Ollama, vLLM, LM Studio, llama.cpp…),
which differ only in `base_url`, in needing no key, and in the token limit's name: OpenAI's newer models
refuse `max_tokens` and want `max_completion_tokens`, while many compatible servers know only `max_tokens`.
Usage comes from the final chunk OpenAI sends when `stream_options.include_usage` is set; a server that
sends none reports 0 tokens (and so costs 0) rather than a guess.

Errors follow `services/api/llm/anthropic.py`: after the SDK's own retries, timeouts, connection failures,
408/409/429 and 5xx are retryable; other 4xx are not; messages never include the key.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import httpx2  # the SDK's HTTP client: a connection that breaks mid-stream raises its errors unwrapped
import openai
from openai.types.chat import ChatCompletionMessageParam

from services.api import prompt as prompts
from services.api.llm.base import Prompt, Usage
from shared.errors import ConfigError, LanguageModelError
from shared.query_settings import QuerySettings

PROVIDERS = ("openai", "openai-compatible")
RETRYABLE_STATUSES = frozenset({408, 409, 429})  # and every 5xx
RETRYABLE_TYPES = frozenset({"server_error", "rate_limit_exceeded", "rate_limit_error", "overloaded_error"})
NO_KEY = "not-needed"  # local servers ignore the key, but the SDK insists on one


class OpenAIChatModel:
    """A `LanguageModel` over `/v1/chat/completions`; `provider` is "openai" or "openai-compatible"."""

    def __init__(self, settings: QuerySettings, provider: str = "openai", *, max_retries: int = 2) -> None:
        if provider not in PROVIDERS:
            raise ValueError(f"provider must be one of {', '.join(PROVIDERS)}, not {provider!r}")
        if provider == "openai" and not settings.llm_api_key:
            raise ConfigError(["CMSRAG_LLM=openai needs OPENAI_API_KEY (or CMSRAG_LLM_API_KEY)"])
        if provider == "openai-compatible" and not settings.llm_base_url:
            raise ConfigError(["CMSRAG_LLM=openai-compatible needs CMSRAG_LLM_BASE_URL"])
        self.provider = provider
        self.model = settings.llm_model
        self._max_tokens = settings.llm_max_tokens
        self._timeout = settings.llm_timeout
        self._secret = settings.llm_api_key
        self._client = openai.OpenAI(
            api_key=settings.llm_api_key or NO_KEY, base_url=settings.llm_base_url, timeout=settings.llm_timeout,
            max_retries=max_retries,
        )

    def stream(self, prompt: Prompt) -> Iterator[str | Usage]:
        prompt = prompts.rendered(prompt)
        messages: list[dict[str, Any]] = [{"role": "system", "content": prompt.system}] if prompt.system else []
        messages += prompt.messages
        usage = Usage()
        try:
            with self._client.chat.completions.create(
                model=self.model, messages=cast(list[ChatCompletionMessageParam], messages), stream=True,
                stream_options={"include_usage": True},
                max_completion_tokens=self._max_tokens if self.provider == "openai" else openai.omit,
                max_tokens=self._max_tokens if self.provider != "openai" else openai.omit,
            ) as chunks:
                for chunk in chunks:
                    if chunk.usage is not None:
                        usage = Usage(chunk.usage.prompt_tokens or 0, chunk.usage.completion_tokens or 0)
                    for choice in chunk.choices:
                        if choice.delta is not None and choice.delta.content:
                            yield choice.delta.content
        except (openai.OpenAIError, httpx2.TransportError) as exc:
            raise self._error(exc) from exc
        yield usage

    def _error(self, exc: Exception) -> LanguageModelError:
        """The SDK's failure, classified and described without the key."""
        where = f"{self.provider} {self.model}"
        if isinstance(exc, openai.APITimeoutError | httpx2.TimeoutException):
            message, retryable = f"{where}: no reply within {self._timeout:g}s", True
        elif isinstance(exc, openai.APIConnectionError | httpx2.TransportError):
            message, retryable = f"{where}: connection failed: {exc}", True
        elif isinstance(exc, openai.APIStatusError):
            status, kind = exc.status_code, _error_field(exc.body, "type") or "error"
            retryable = status >= 500 or status in RETRYABLE_STATUSES
            message = f"{where}: {kind} (HTTP {status}): {_error_field(exc.body, 'message') or exc.message}"
        elif isinstance(exc, openai.APIError) and _error_field(exc.body, "type"):  # an error event inside the stream
            kind = _error_field(exc.body, "type") or "error"
            message, retryable = f"{where}: {kind} while streaming: {exc.message}", kind in RETRYABLE_TYPES
        else:  # an unusable reply: retrying the same request will not help
            message, retryable = f"{where}: {type(exc).__name__}: {exc}", False
        if self._secret:
            message = message.replace(self._secret, "[api key]")
        return LanguageModelError(message, retryable=retryable, provider=self.provider)


def _error_field(body: object, name: str) -> str | None:
    """`error.<name>` of an OpenAI error body (the SDK passes either the whole body or its `error` part)."""
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get(name), str):
            return str(inner[name])
    return None
