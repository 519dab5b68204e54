"""What embedding costs, in US dollars per million input tokens, by embedder model id, for the cost metric.

A small table of list prices when written (OpenAI's pricing page); models that run on our own hardware —
`local:` (sentence-transformers), `compat:` (Ollama, vLLM, TEI…) and `fake:` — cost 0, and so does any model
the table does not know, which reads as "not counted" rather than a wrong guess. A reduced-dimension id
(`openai:text-embedding-3-small@512`) is priced as its model: OpenAI bills tokens, not dimensions.
"""

from __future__ import annotations

USD_PER_MILLION_TOKENS: dict[str, float] = {
    "openai:text-embedding-3-small": 0.02,
    "openai:text-embedding-3-large": 0.13,
    "openai:text-embedding-ada-002": 0.10,
}


def price_per_million(model_id: str) -> float:
    """USD per million tokens for `model_id`; 0 for local, self-hosted, fake and unknown models."""
    return USD_PER_MILLION_TOKENS.get(model_id.split("@", 1)[0], 0.0)


def cost_usd(model_id: str, tokens: int) -> float:
    return tokens * price_per_million(model_id) / 1_000_000
