"""Sites are configured as data: several per deployment, each a CMS (or a file source) with its own secret.

Read from `CMSRAG_SITES_FILE` (TOML, `[[site]]` tables) or `CMSRAG_SITES` (the same as a JSON list, for
container platforms that only pass environment variables). A value written `env:NAME` is read from the
environment, so secrets need not sit in the file. With neither set, the bundled sample site is configured
so that `cmsrag demo` works on a fresh machine.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.errors import ConfigError

KINDS = ("wordpress", "wagtail", "wxr", "files")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
SAMPLE_WXR = "samples/python-tutorial.wxr"


@dataclass(frozen=True)
class SiteConfig:
    """One configured source of documents."""

    name: str
    kind: str
    url: str | None = None  # base URL of the CMS (wordpress, wagtail) or public URL prefix (wxr, files)
    path: Path | None = None  # file or folder (wxr, files)
    webhook_secrets: tuple[str, ...] = field(default=(), repr=False)
    username: str | None = None
    app_password: str | None = field(default=None, repr=False)
    post_types: tuple[str, ...] = ("posts", "pages")
    language: str | None = None

    @property
    def audience(self) -> str:
        """Who may see what this site's credentials fetch: public unless a private-content login is configured."""
        return f"user:{self.username}" if self.username and self.app_password else "public"


def load_sites(env: Mapping[str, str], root: Path) -> tuple[SiteConfig, ...]:
    """Parse the configured sites; raise `ConfigError` listing every problem found."""
    if env.get("CMSRAG_SITES_FILE"):
        path = Path(env["CMSRAG_SITES_FILE"])
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8")).get("site", [])
        except FileNotFoundError:
            raise ConfigError([f"CMSRAG_SITES_FILE={path}: no such file"]) from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError([f"CMSRAG_SITES_FILE={path}: not valid TOML ({exc})"]) from None
        base = path.parent
    elif env.get("CMSRAG_SITES"):
        try:
            raw = json.loads(env["CMSRAG_SITES"])
        except json.JSONDecodeError as exc:
            raise ConfigError([f"CMSRAG_SITES is not valid JSON ({exc})"]) from None
        base = root
    else:
        raw = [{"name": "sample", "kind": "wxr", "path": str(root / SAMPLE_WXR)}]
        base = root
    if not isinstance(raw, list):
        raise ConfigError(["sites must be a list of tables ([[site]] in TOML, a JSON array in CMSRAG_SITES)"])
    problems: list[str] = []
    sites = [s for i, item in enumerate(raw) if (s := _parse_site(i, item, env, base, problems))]
    names = [s.name for s in sites]
    problems += [f"site name {n!r} is configured twice" for n in sorted({n for n in names if names.count(n) > 1})]
    if problems:
        raise ConfigError(problems)
    return tuple(sites)


def _parse_site(i: int, item: Any, env: Mapping[str, str], base: Path, problems: list[str]) -> SiteConfig | None:
    where = f"site #{i + 1}"
    if not isinstance(item, dict):
        problems.append(f"{where}: must be a table with name and kind")
        return None
    item = {k: _expand(v, env, f"{where}.{k}", problems) for k, v in item.items()}
    name, kind = item.get("name"), item.get("kind")
    if not isinstance(name, str) or not NAME_RE.match(name):
        problems.append(f"{where}: name {name!r} must be lower-case letters, digits, - or _ (max 63)")
        return None
    where = f"site {name!r}"
    unknown = set(item) - {"name", "kind", "url", "path", "webhook_secret", "webhook_secrets", "username",
                           "app_password", "post_types", "language"}
    if unknown:
        problems.append(f"{where}: unknown keys {', '.join(sorted(unknown))}")
    if kind not in KINDS:
        problems.append(f"{where}: kind {kind!r} must be one of {', '.join(KINDS)}")
        return None
    url = item.get("url")
    if url is not None and (not isinstance(url, str) or not re.match(r"^https?://[^\s/]+", url)):
        problems.append(f"{where}: url {url!r} must be an http(s) URL")
    if kind in ("wordpress", "wagtail") and not url:
        problems.append(f"{where}: kind {kind} needs url (the site's base URL)")
    path = item.get("path")
    if kind in ("wxr", "files"):
        if not path:
            problems.append(f"{where}: kind {kind} needs path")
        else:
            path = (base / path).resolve()
            if kind == "wxr" and not path.is_file():
                problems.append(f"{where}: path {path} is not a file")
            if kind == "files" and not path.is_dir():
                problems.append(f"{where}: path {path} is not a folder")
    secrets = item.get("webhook_secrets", item.get("webhook_secret", []))
    secrets = [secrets] if isinstance(secrets, str) else secrets
    if not isinstance(secrets, list) or not all(isinstance(s, str) and len(s) >= 16 for s in secrets):
        problems.append(f"{where}: webhook secrets must be strings of at least 16 characters")
        secrets = []
    if bool(item.get("username")) != bool(item.get("app_password")):
        problems.append(f"{where}: username and app_password go together")
    types = item.get("post_types", ["posts", "pages"])
    if not isinstance(types, list) or not all(isinstance(t, str) and re.match(r"^[a-z0-9_-]+$", t) for t in types):
        problems.append(f"{where}: post_types must be a list of REST bases such as [\"posts\", \"pages\"]")
        types = ["posts", "pages"]
    return SiteConfig(
        name=name, kind=kind, url=url.rstrip("/") if isinstance(url, str) else None,
        path=Path(path) if path else None, webhook_secrets=tuple(secrets),
        username=item.get("username"), app_password=item.get("app_password"),
        post_types=tuple(types), language=item.get("language"),
    )


def _expand(value: Any, env: Mapping[str, str], where: str, problems: list[str]) -> Any:
    """Replace `env:NAME` by the variable's value, so secrets can stay out of the sites file."""
    if isinstance(value, list):
        return [_expand(v, env, where, problems) for v in value]
    if isinstance(value, str) and value.startswith("env:"):
        name = value[4:]
        if name not in env:
            problems.append(f"{where}: environment variable {name} is not set")
            return None
        return env[name]
    return value
