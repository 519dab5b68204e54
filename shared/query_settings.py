"""The query service's settings (`Settings.query`): language model, access, limits, cache, relevance.

Read by `Settings.from_env()` together with everything else, so a bad value here is reported with the rest.
The language model defaults to **extractive** (no model at all) unless a key is configured: `make demo` must
answer offline, and a deployment that sets `ANTHROPIC_API_KEY` or `OPENAI_API_KEY` gets that provider without
naming it twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from shared.envreader import EnvReader, at_least_zero, in_range, positive

LLMS = ("extractive", "anthropic", "openai", "openai-compatible")
# The relevance floor is a cosine similarity, so it belongs to the embedding model: all-MiniLM-L6-v2's was tuned
# with `cmsrag eval` on the development set (docs/benchmarks.md); OpenAI's text-embedding-3 models score lower
# across the board (not measured here: tune with `cmsrag eval`); the fake embedder's scale is its own.
DEFAULT_MIN_SIMILARITY = {"local": 0.45, "openai": 0.3, "openai-compatible": 0.3, "fake": 0.2}
DEFAULT_LLM_MODELS = {
    "extractive": "extractive-v1",
    "anthropic": "claude-sonnet-4-6",
    "openai": "gpt-4o-mini",
    "openai-compatible": "llama3.1",
}


@dataclass(frozen=True)
class Rate:
    """A rate limit: `per_minute` sustained requests, bursts of up to `burst` at once."""

    per_minute: int
    burst: int

    @classmethod
    def parse(cls, raw: str) -> Rate:
        """`"30/min"` or `"30/min,burst=10"` (burst defaults to a fifth of the rate, at least 1)."""
        head, _, tail = raw.replace(" ", "").partition(",")
        count, _, unit = head.partition("/")
        per = {"s": 60, "sec": 60, "second": 60, "m": 1, "min": 1, "minute": 1, "h": 1 / 60, "hour": 1 / 60}
        if not count.isdigit() or unit not in per or (tail and not tail.startswith("burst=")):
            raise ValueError(raw)
        per_minute = int(int(count) * per[unit])
        burst = int(tail.removeprefix("burst=")) if tail else max(1, per_minute // 5)
        if per_minute < 1 or burst < 1:
            raise ValueError(raw)
        return cls(per_minute, burst)


@dataclass(frozen=True)
class QuerySettings:
    """Everything `services/api` needs beyond the index itself."""

    llm: str = "extractive"
    llm_model: str = DEFAULT_LLM_MODELS["extractive"]
    llm_base_url: str | None = None
    llm_api_key: str | None = field(default=None, repr=False)
    llm_max_tokens: int = 700
    llm_timeout: float = 60.0
    # USD per million tokens; 0 means "unknown, not counted" (see services/api/llm/pricing.py for defaults)
    llm_price_input: float | None = None
    llm_price_output: float | None = None
    public_access: bool = True
    allowed_origins: tuple[str, ...] = ()
    public_rate: Rate = Rate(20, 5)
    key_rate: Rate = Rate(120, 30)
    answer_cache_ttl: int = 86_400
    ask_passages: int = 6
    min_similarity: float = 0.45
    max_question_chars: int = 1_000
    max_query_chars: int = 2_000
    max_body_bytes: int = 64 * 1024
    max_conversation_turns: int = 10
    trust_proxy_hops: int = 0

    @classmethod
    def from_env(cls, env: Mapping[str, str], problems: list[str], site_urls: list[str],
                 embedder: str = "local") -> QuerySettings:
        """Parse `CMSRAG_LLM*`, `CMSRAG_API_*`, `ANTHROPIC_*`; append problems instead of raising."""

        reader = EnvReader(env, problems)
        get = reader.get

        anthropic_key = env.get("ANTHROPIC_API_KEY") or None
        openai_key = env.get("OPENAI_API_KEY") or None
        default_llm = "anthropic" if anthropic_key else "openai" if openai_key else "extractive"
        llm = env.get("CMSRAG_LLM", "").strip() or default_llm
        if llm not in LLMS:
            problems.append(f"CMSRAG_LLM={llm!r}: must be one of {', '.join(LLMS)}")
            llm = "extractive"
        api_key = env.get("CMSRAG_LLM_API_KEY") or (anthropic_key if llm == "anthropic" else openai_key)
        base_url = env.get("CMSRAG_LLM_BASE_URL") or (env.get("ANTHROPIC_BASE_URL") if llm == "anthropic" else None)
        if llm in ("anthropic", "openai") and not api_key:
            problems.append(f"CMSRAG_LLM={llm} needs {'ANTHROPIC' if llm == 'anthropic' else 'OPENAI'}_API_KEY "
                            "(or CMSRAG_LLM_API_KEY)")
        if llm == "openai-compatible" and not base_url:
            problems.append("CMSRAG_LLM=openai-compatible needs CMSRAG_LLM_BASE_URL (e.g. http://localhost:11434/v1)")
        origins = tuple(o.strip().rstrip("/") for o in env.get("CMSRAG_ALLOWED_ORIGINS", "").split(",") if o.strip())
        for o in origins:
            if o != "*" and not _is_origin(o):
                problems.append(f"CMSRAG_ALLOWED_ORIGINS: {o!r} is not an origin such as https://example.org")
        if not origins:  # the configured sites' own origins: the widget is embedded in the site it answers for
            origins = tuple(sorted({_origin(u) for u in site_urls if _is_origin(_origin(u))}))
        public = env.get("CMSRAG_API_PUBLIC", "true").strip().lower()
        if public not in ("true", "false", "1", "0", "yes", "no"):
            problems.append(f"CMSRAG_API_PUBLIC={public!r}: must be true or false")
        return cls(
            llm=llm,
            llm_model=env.get("CMSRAG_LLM_MODEL") or DEFAULT_LLM_MODELS[llm],
            llm_base_url=base_url,
            llm_api_key=api_key,
            llm_max_tokens=get("CMSRAG_LLM_MAX_TOKENS", int, 700, in_range(16, 32_000)),
            llm_timeout=get("CMSRAG_LLM_TIMEOUT", float, 60.0, positive),
            llm_price_input=reader.optional("CMSRAG_LLM_PRICE_INPUT", float, at_least_zero),
            llm_price_output=reader.optional("CMSRAG_LLM_PRICE_OUTPUT", float, at_least_zero),
            public_access=public in ("true", "1", "yes"),
            allowed_origins=origins,
            public_rate=get("CMSRAG_RATE_PUBLIC", Rate.parse, Rate(20, 5)),
            key_rate=get("CMSRAG_RATE_KEY", Rate.parse, Rate(120, 30)),
            answer_cache_ttl=get("CMSRAG_ANSWER_CACHE_TTL", int, 86_400, at_least_zero),
            ask_passages=get("CMSRAG_ASK_PASSAGES", int, 6, in_range(1, 20)),
            min_similarity=get("CMSRAG_MIN_SIMILARITY", float, DEFAULT_MIN_SIMILARITY.get(embedder, 0.3),
                               in_range(-1, 1)),
            max_question_chars=get("CMSRAG_MAX_QUESTION_CHARS", int, 1_000, in_range(10, 20_000)),
            trust_proxy_hops=get("CMSRAG_TRUST_PROXY_HOPS", int, 0, in_range(0, 5)),
        )


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def _is_origin(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc) and not parts.path and not parts.query
