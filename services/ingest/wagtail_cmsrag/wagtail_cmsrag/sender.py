"""One signed POST to cmsrag's receiver, and what its answer means (docs/webhooks.md, "Answers").

`judge` is the contract's table as a function: 2xx delivered; 400/401/404/413/415/422 definitive (retrying cannot
help); anything else, or no answer, is retried. Redirects are not followed: a POST must not silently become a
GET to another address, so a 3xx is reported (and retried) like any other unexpected answer.
"""

from __future__ import annotations

import http.client
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from enum import Enum

from . import __version__
from .conf import Config
from .signing import sign

DEFINITIVE = frozenset({400, 401, 404, 413, 415, 422})
UNAVAILABLE = frozenset({429, 502, 503, 504})  # the receiver (or what is behind it) is down or overloaded


class Verdict(Enum):
    DELIVERED = "delivered"
    RETRY = "retry"
    GIVE_UP = "give_up"


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    status: int | None  # None: no answer (refused, timed out, reset)
    detail: str
    retry_after: float | None = None  # seconds, from a Retry-After header

    @property
    def receiver_down(self) -> bool:
        """No point in sending more now: nothing answered, or the answer says "later"."""
        return self.verdict is Verdict.RETRY and (self.status is None or self.status in UNAVAILABLE)


def judge(status: int | None, detail: str, retry_after: str | None = None, now: float | None = None) -> Outcome:
    if status is not None and 200 <= status < 300:
        return Outcome(Verdict.DELIVERED, status, detail)
    if status in DEFINITIVE:
        return Outcome(Verdict.GIVE_UP, status, detail)
    return Outcome(Verdict.RETRY, status, detail, _seconds(retry_after, time.time() if now is None else now))


def post(config: Config, webhook_id: str, body: bytes, *, clock: Callable[[], float] = time.time) -> Outcome:
    """Send `body` once, signed with a fresh timestamp; never raises for network trouble."""
    headers = {"Content-Type": "application/json", "User-Agent": f"wagtail-cmsrag/{__version__}",
               **sign(config.secrets, webhook_id, body, int(clock()))}
    request = urllib.request.Request(config.endpoint, data=body, headers=headers, method="POST")
    try:
        with _opener.open(request, timeout=config.timeout) as response:
            return judge(response.status, f"HTTP {response.status}: {_excerpt(response.read(2000))}")
    except urllib.error.HTTPError as exc:  # an answer, just not a 2xx
        with exc:
            redirect = 300 <= exc.code < 400
            answer = f"redirected to {exc.headers.get('Location')}" if redirect else _excerpt(exc.read(2000))
            detail = f"HTTP {exc.code}: {answer}"
            return judge(exc.code, detail, exc.headers.get("Retry-After"), clock())
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        return judge(None, f"no answer: {reason.__class__.__name__}: {reason}"[:300])


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirects())


def _excerpt(raw: bytes) -> str:
    return raw.decode("utf-8", "replace").strip()[:300]


def _seconds(retry_after: str | None, now: float) -> float | None:
    """Retry-After as seconds from now: delta-seconds or an HTTP date; None if absent or unreadable."""
    if not retry_after:
        return None
    value = retry_after.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError):
        return None
