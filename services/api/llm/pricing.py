"""What an answer cost, in US dollars, from the tokens the provider reported.

Defaults cover the models people usually configure, so a deployment shows costs without setting prices;
`CMSRAG_LLM_PRICE_INPUT`/`_OUTPUT` override them (a new model, a negotiated rate, a self-hosted server).
Unknown models and the extractive answerer cost 0, which reads as "not counted" rather than a wrong guess.
Dated snapshots ("claude-sonnet-4-5-20250929", "gpt-4o-mini-2024-07-18") take their family's price by the
longest matching prefix, so "gpt-4o-mini-…" is never priced as "gpt-4o".
"""

from __future__ import annotations

from services.api.llm.base import Usage
from shared.query_settings import QuerySettings

# model -> (USD per million input tokens, USD per million output tokens)
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "claude-sonnet-4-6": (3.0, 15.0),  # list prices when written; CMSRAG_LLM_PRICE_* override them
    "claude-sonnet-4-5": (3.0, 15.0),
    "claude-haiku-4-5": (1.0, 5.0),
    "claude-opus-4-1": (15.0, 75.0),
    "gpt-4o-mini": (0.15, 0.6),
    "gpt-4o": (2.5, 10.0),
    "gpt-4.1-mini": (0.4, 1.6),
    "extractive-v1": (0.0, 0.0),
}


def default_prices(model: str) -> tuple[float, float]:
    """The table's price for `model` or its family (longest prefix), else (0, 0)."""
    if model in DEFAULT_PRICES:
        return DEFAULT_PRICES[model]
    families = [name for name in DEFAULT_PRICES if model.startswith(name + "-")]
    return DEFAULT_PRICES[max(families, key=len)] if families else (0.0, 0.0)


def prices(settings: QuerySettings, model: str) -> tuple[float, float]:
    """Input and output price per million tokens; each configured price overrides the table's on its own."""
    table_in, table_out = default_prices(model)
    given_in, given_out = settings.llm_price_input, settings.llm_price_output
    return (table_in if given_in is None else given_in, table_out if given_out is None else given_out)


def cost_usd(settings: QuerySettings, model: str, usage: Usage) -> float:
    """The cost of `usage` tokens of `model`, rounded to a millionth of a cent to hide float noise."""
    price_in, price_out = prices(settings, model)
    return round((usage.input_tokens * price_in + usage.output_tokens * price_out) / 1_000_000, 8)
