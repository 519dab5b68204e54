"""The answering language models, chosen by configuration (`QuerySettings.llm`).

`make_language_model` is the one place that maps a setting to an implementation, so the API never names a
provider; the extractive answerer is a first-class choice (no key, no network), not a test double.

The SDK-backed models are imported only when asked for (here or as `services.api.llm.AnthropicModel`):
`import anthropic` alone takes seconds on a small machine, and the prompt, the extractive answerer and
their tests should not pay for SDKs they never call.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from services.api.llm.base import LanguageModel, Prompt, Turn, Usage
from services.api.llm.extractive import ExtractiveModel
from services.api.llm.pricing import DEFAULT_PRICES, cost_usd, prices
from shared.errors import ConfigError
from shared.query_settings import LLMS, QuerySettings

if TYPE_CHECKING:
    from services.api.llm.anthropic import AnthropicModel
    from services.api.llm.openai_chat import OpenAIChatModel

__all__ = [
    "DEFAULT_PRICES",
    "AnthropicModel",
    "ExtractiveModel",
    "LanguageModel",
    "OpenAIChatModel",
    "Prompt",
    "Turn",
    "Usage",
    "cost_usd",
    "make_language_model",
    "prices",
]
_LAZY = {"AnthropicModel": "services.api.llm.anthropic", "OpenAIChatModel": "services.api.llm.openai_chat"}


def make_language_model(settings: QuerySettings) -> LanguageModel:
    """The model `settings.llm` names; raises `ConfigError` for an unknown name or a missing key/URL."""
    if settings.llm == "extractive":
        return ExtractiveModel()
    if settings.llm == "anthropic":
        from services.api.llm.anthropic import AnthropicModel

        return AnthropicModel(settings)
    if settings.llm in ("openai", "openai-compatible"):
        from services.api.llm.openai_chat import OpenAIChatModel

        return OpenAIChatModel(settings, provider=settings.llm)
    raise ConfigError([f"CMSRAG_LLM={settings.llm!r}: must be one of {', '.join(LLMS)}"])


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
