"""The app's settings (Django settings named `CMSRAG_*`), validated in one place.

`read` reports every bad value at once; the same problems are Django system checks, so `migrate`, `check` and
`runserver` name them at start-up. Without `CMSRAG_RECEIVER_URL` the app is off (a warning, not an error), so a
developer's copy of the site works without a cmsrag to talk to.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit


@dataclass(frozen=True)
class Config:
    receiver_url: str  # cmsrag's receiver, e.g. https://cmsrag.example.org
    site: str  # the site's name in cmsrag's configuration
    secrets: tuple[str, ...]  # every one signs each request: list the new and the old one during a rotation
    timeout: float = 3.0  # seconds per request; an editor's publish waits for at most this long
    min_backoff: float = 30.0  # seconds before the first retry; doubles with every attempt
    max_backoff: float = 3600.0
    max_attempts: int = 25  # then the row is marked failed (about a day with the defaults)
    retry_on_success: int = 10  # pending rows sent right after a successful send (the receiver is back)

    @property
    def endpoint(self) -> str:
        return f"{self.receiver_url.rstrip('/')}/webhooks/wagtail/{quote(self.site, safe='')}"


def read(settings: Any) -> tuple[Config | None, list[str]]:
    """The configuration in `settings`, and what is wrong with it; `(None, [])` when webhooks are off."""
    def get(name: str, default: Any = None) -> Any:
        return getattr(settings, name, default)

    url = get("CMSRAG_RECEIVER_URL")
    if not url:
        return None, []
    problems = []
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        problems.append(f"CMSRAG_RECEIVER_URL must be an http(s) URL such as https://cmsrag.example.org, not {url!r}")
    site = get("CMSRAG_SITE")
    if not isinstance(site, str) or not site.strip() or "/" in site:
        problems.append(f"CMSRAG_SITE must be the site's name in cmsrag's configuration, not {site!r}")
    secrets = get("CMSRAG_WEBHOOK_SECRETS")
    if not isinstance(secrets, list | tuple) or not secrets or not all(isinstance(s, str) and s for s in secrets):
        problems.append("CMSRAG_WEBHOOK_SECRETS must be a non-empty list of secrets, e.g. ['whsec_…'] "
                        "(two during a rotation)")
    timeout = _number(get, "CMSRAG_TIMEOUT", Config.timeout, 0.1, problems)
    min_backoff = _number(get, "CMSRAG_RETRY_MIN_BACKOFF", Config.min_backoff, 0.0, problems)
    max_backoff = _number(get, "CMSRAG_RETRY_MAX_BACKOFF", Config.max_backoff, 0.0, problems)
    max_attempts = int(_number(get, "CMSRAG_RETRY_MAX_ATTEMPTS", Config.max_attempts, 1, problems, integer=True))
    retry_on_success = int(_number(get, "CMSRAG_RETRY_ON_SUCCESS", Config.retry_on_success, 0, problems,
                                   integer=True))
    if min_backoff > max_backoff:
        problems.append("CMSRAG_RETRY_MIN_BACKOFF must not be above CMSRAG_RETRY_MAX_BACKOFF")
    if problems:
        return None, problems
    return Config(url, site, tuple(secrets), timeout, min_backoff, max_backoff, max_attempts, retry_on_success), []


def _number(get: Callable[[str, Any], Any], setting: str, default: float, low: float, problems: list[str], *,
            integer: bool = False) -> float:
    value = get(setting, default)
    if isinstance(value, bool) or not isinstance(value, int if integer else int | float) or value < low:
        problems.append(f"{setting} must be {'an integer' if integer else 'a number'} ≥ {low:g}, not {value!r}")
        return default
    return float(value)


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """Django system check: one error per bad setting, a warning when webhooks are off."""
    from django.conf import settings
    from django.core import checks

    config, problems = read(settings)
    if problems:
        return [checks.Error(p, id="wagtail_cmsrag.E001") for p in problems]
    if config is None:
        return [checks.Warning("CMSRAG_RECEIVER_URL is not set: page changes are not sent to cmsrag",
                               id="wagtail_cmsrag.W001")]
    return []
