"""Every cmsrag error, split by what the caller should do about it.

The split drives retry policy: dramatiq retries only `TransientError`; a `PermanentError` becomes a
failure row at once. `ConfigError` stops a process at start-up with a message per bad setting.
"""

from __future__ import annotations


class CmsragError(Exception):
    """Base of every error cmsrag raises on purpose."""


class ConfigError(CmsragError):
    """Raised when settings are missing or invalid; carries one message per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in self.problems))


class PipelineError(CmsragError):
    """Base of errors raised while indexing a document; `stage` says where it happened."""

    retryable = False

    def __init__(self, message: str, *, stage: str = "unknown") -> None:
        super().__init__(message)
        self.stage = stage


class PermanentError(PipelineError):
    """Raised when retrying cannot help: malformed content, a 4xx the CMS will keep giving."""


class TransientError(PipelineError):
    """Raised when a later retry may succeed: timeouts, 5xx, 429, a database restart."""

    retryable = True


class NotPublic(CmsragError):
    """Raised by a source when a document is not (or no longer) publicly visible: remove it from the index."""

    def __init__(self, site: str, source_id: str, reason: str) -> None:
        super().__init__(f"{site}/{source_id} is not public: {reason}")
        self.site = site
        self.source_id = source_id
        self.reason = reason


class UnknownSite(CmsragError):
    """Raised when a site name is not in the configured sites."""

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"unknown site {name!r}; configured sites: {', '.join(known) or '(none)'}")
        self.name = name


class IndexMismatch(CmsragError):
    """Raised when the database index was built for another embedding model or dimension."""


class LanguageModelError(CmsragError):
    """Raised when the answering model fails; `retryable` for timeouts, 429, 5xx and overload (529)."""

    def __init__(self, message: str, *, retryable: bool, provider: str = "") -> None:
        super().__init__(message)
        self.retryable = retryable
        self.provider = provider


class AccessDenied(CmsragError):
    """Raised when a request has no valid API key (401) or its key may not read the site asked for (403)."""

    def __init__(self, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.status = status


class RateLimited(CmsragError):
    """Raised when a key or client address is over its limit; `retry_after` seconds until the next request fits."""

    def __init__(self, bucket: str, retry_after: float) -> None:
        super().__init__(f"rate limit exceeded for {bucket.split(':', 1)[0]}; retry in {retry_after:.1f}s")
        self.bucket = bucket
        self.retry_after = retry_after
