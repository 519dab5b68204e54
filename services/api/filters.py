"""Search filters: which passages a request may see (site, content type, language, modification date).

Parsed from a request's `filters` object with one clear message per mistake, and rendered as one SQL condition
on `documents d` that both retrieval sides share, so hybrid, vector-only and full-text results obey the same
filter. A key scoped to some sites narrows `sites` further (`Filters.within`).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from services.embedder.store import ts_config

FIELDS = ("site", "type", "language", "modified_after", "modified_before")


class FilterError(ValueError):
    """Raised when a `filters` object is malformed; the message says which field and why."""


@dataclass(frozen=True)
class Filters:
    sites: tuple[str, ...] | None = None
    types: tuple[str, ...] | None = None
    language: str | None = None
    modified_after: datetime | None = None
    modified_before: datetime | None = None

    def within(self, allowed: Collection[str] | None) -> Filters:
        """These filters narrowed to `allowed` sites (None: no restriction)."""
        if allowed is None:
            return self
        sites = tuple(s for s in (self.sites or tuple(sorted(allowed))) if s in allowed)
        return replace(self, sites=sites)

    def sql(self) -> tuple[str, dict[str, Any]]:
        """A condition on `d` (documents) and its parameters; always at least `true`."""
        parts: list[str] = ["true"]
        params: dict[str, Any] = {}
        if self.sites is not None:
            parts.append("d.site = ANY(%(f_sites)s)")
            params["f_sites"] = list(self.sites)
        if self.types is not None:
            parts.append("d.doc_type = ANY(%(f_types)s)")
            params["f_types"] = list(self.types)
        if self.language is not None:  # "en" matches en, en-GB, en_US
            parts.append("(lower(d.language) = %(f_lang)s OR lower(d.language) LIKE %(f_lang_prefix)s)")
            params["f_lang"] = self.language.lower()
            params["f_lang_prefix"] = self.language.lower().replace("_", "-") + "-%"
        if self.modified_after is not None:
            parts.append("d.modified_at >= %(f_after)s")
            params["f_after"] = self.modified_after
        if self.modified_before is not None:
            parts.append("d.modified_at < %(f_before)s")
            params["f_before"] = self.modified_before
        return " AND ".join(parts), params

    @property
    def text_config(self) -> str:
        """The text-search configuration for the query side: the language's, or english."""
        return ts_config(self.language) if self.language else "english"

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.sites is not None:
            out["site"] = list(self.sites)
        if self.types is not None:
            out["type"] = list(self.types)
        if self.language is not None:
            out["language"] = self.language
        if self.modified_after is not None:
            out["modified_after"] = self.modified_after.isoformat()
        if self.modified_before is not None:
            out["modified_before"] = self.modified_before.isoformat()
        return out


def parse_filters(raw: Any, known_sites: Collection[str]) -> Filters:
    """Filters from a request body's `filters` value (a JSON object, or absent)."""
    if raw is None:
        return Filters()
    if not isinstance(raw, dict):
        raise FilterError("'filters' must be an object such as {\"site\": \"blog\"}")
    unknown = set(raw) - set(FIELDS)
    if unknown:
        raise FilterError(f"unknown filters: {', '.join(sorted(unknown))} (known: {', '.join(FIELDS)})")
    sites = _names(raw, "site")
    if sites is not None:
        missing = [s for s in sites if s not in known_sites]
        if missing:
            raise FilterError(f"unknown site {missing[0]!r}; configured sites: {', '.join(sorted(known_sites))}")
    language = raw.get("language")
    if language is not None and (not isinstance(language, str) or not 2 <= len(language) <= 35
                                 or not language.replace("-", "").replace("_", "").isalnum()):
        raise FilterError("'filters.language' must be a language tag such as \"en\" or \"pt-BR\"")
    after, before = _date(raw, "modified_after"), _date(raw, "modified_before")
    if after and before and after >= before:
        raise FilterError("'filters.modified_after' must be earlier than 'filters.modified_before'")
    return Filters(sites=sites, types=_names(raw, "type"), language=language, modified_after=after,
                   modified_before=before)


def _names(raw: dict[str, Any], field: str) -> tuple[str, ...] | None:
    value = raw.get(field)
    if value is None:
        return None
    values = [value] if isinstance(value, str) else value
    if (not isinstance(values, list) or not values or len(values) > 50
            or not all(isinstance(v, str) and 0 < len(v) <= 200 for v in values)):
        raise FilterError(f"'filters.{field}' must be a name or a non-empty list of names")
    return tuple(dict.fromkeys(values))


def _date(raw: dict[str, Any], field: str) -> datetime | None:
    value = raw.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise FilterError(f"'filters.{field}' must be an ISO 8601 date such as \"2024-05-01\"")
    try:
        d = datetime.fromisoformat(value)
    except ValueError:
        raise FilterError(f"'filters.{field}' must be an ISO 8601 date such as \"2024-05-01\"") from None
    return d if d.tzinfo else d.replace(tzinfo=UTC)
