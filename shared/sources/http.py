"""HTTP for CMS APIs: timeouts, bounded retries with backoff for 5xx/429/timeouts only, and errors split by kind.

4xx other than 429 are returned to the caller (a source maps 401/403/404/410 to `NotPublic`); everything the
client gives up on becomes a `TransientError`, so the queue's own backoff takes over from there.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests

from shared.errors import PermanentError, TransientError

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
USER_AGENT = "cmsrag/0.1 (+indexer)"


@dataclass(frozen=True)
class Response:
    """What a source needs of an HTTP answer."""

    status: int
    headers: dict[str, str]
    body: bytes
    url: str

    def json(self) -> Any:
        """The body as JSON, or `PermanentError` saying what came instead (an HTML error page, a PHP notice…)."""
        ctype = self.headers.get("content-type", "")
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            head = self.body[:80].decode("utf-8", "replace").replace("\n", " ")
            raise PermanentError(
                f"{self.url} answered {self.status} with {ctype or 'no content type'}, not JSON: {head!r}",
                stage="fetch",
            ) from None


class HttpClient:
    """A small wrapper around one `requests.Session` per source (connection reuse across documents)."""

    def __init__(self, *, timeout: float = 10.0, retries: int = 3, max_bytes: int = 8_000_000,
                 backoff: float = 0.5, sleep: Callable[[float], None] = time.sleep,
                 auth: tuple[str, str] | None = None) -> None:
        self.timeout = timeout
        self.retries = retries
        self.max_bytes = max_bytes
        self.backoff = backoff
        self.sleep = sleep
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        self.session.headers["Accept"] = "application/json"
        if auth:
            self.session.auth = auth

    def get(self, url: str, params: dict[str, Any] | None = None) -> Response:
        """GET with retries; returns any non-retryable answer (2xx, 3xx, 4xx) to the caller."""
        last = "no attempt"
        for attempt in range(self.retries + 1):
            if attempt:
                self.sleep(self.backoff * (2 ** (attempt - 1)) * (0.5 + random.random()))
            try:
                with self.session.get(url, params=params, timeout=self.timeout, stream=True) as r:
                    body = self._read_capped(r, url)
                    resp = Response(r.status_code, {k.lower(): v for k, v in r.headers.items()}, body, r.url)
            except requests.Timeout:
                last = f"timed out after {self.timeout}s"
                continue
            except requests.ConnectionError as exc:
                last = f"connection failed ({exc.__class__.__name__})"
                continue
            if resp.status in RETRY_STATUSES:
                last = f"HTTP {resp.status}"
                retry_after = resp.headers.get("retry-after", "")
                if resp.status == 429 and retry_after.isdigit() and attempt < self.retries:
                    self.sleep(min(float(retry_after), 30.0))
                continue
            return resp
        raise TransientError(f"GET {url}: {last} (after {self.retries + 1} attempts)", stage="fetch")

    def _read_capped(self, r: requests.Response, url: str) -> bytes:
        declared = r.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.max_bytes:
            raise PermanentError(f"{url}: response of {declared} bytes is over the {self.max_bytes}-byte cap",
                                 stage="fetch")
        chunks, size = [], 0
        for part in r.iter_content(65536):
            size += len(part)
            if size > self.max_bytes:
                raise PermanentError(f"{url}: response is over the {self.max_bytes}-byte cap", stage="fetch")
            chunks.append(part)
        return b"".join(chunks)
