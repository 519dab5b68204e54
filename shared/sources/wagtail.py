"""Wagtail pages through the read-only API v2 (`/api/v2/pages/`), as a `Source`.

The API serves only live, public pages: an unpublished, private or deleted page is a 404, which is all
`NotPublic` needs. What it does not serve is HTML: a StreamField comes as JSON blocks and rich text in its
stored form (`<a linktype="page" id="5">`, `<embed embedtype="image" …/>`). This module renders that to the
HTML the page itself would show closely enough for cleaning and citations: headings get the id the site's
template most likely gives them (the slugified text, as Django's `slugify`), internal links are resolved to
their public URLs through the API, embeds are dropped.

Listing works on a stock `PagesAPIViewSet`, whose generic page listing knows no `last_published_at`
(`?fields=last_published_at` is a 400 there): the source then lists ids without it and asks each page type's
listing for the modification times. A 400 for a too-large `limit` makes it page with what the server allows.
"""

from __future__ import annotations

import html
import re
import time
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

from shared.errors import NotPublic, PermanentError
from shared.models import ListedDocument, SourceDocument
from shared.sites import SiteConfig
from shared.sources.http import HttpClient, Response

LIMIT = 100
FALLBACK_LIMIT = 20  # Wagtail's default WAGTAILAPI_LIMIT_MAX
LINK_TTL = 300.0  # seconds a resolved internal link is trusted (pages rarely move; a stale link is harmless)
HEADING_KEYS = ("text", "heading", "heading_text", "title", "value")
RAW_TYPES = frozenset({"raw", "raw_html", "html"})
_STORED_LINK = re.compile(r"<a\s([^>]*\blinktype=\"[^\"]*\"[^>]*)>")
_ATTR = re.compile(r"([\w-]+)=\"([^\"]*)\"")
_EMBED = re.compile(r"<embed\b[^>]*>")


class WagtailSource:
    """Fetches and lists the live pages of one Wagtail site."""

    def __init__(self, site: SiteConfig, client: HttpClient, max_bytes: int, *, page_size: int = LIMIT,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.site = site
        self.client = client
        self.max_bytes = max_bytes
        self.page_size = page_size
        self.api = f"{(site.url or '').rstrip('/')}/api/v2/pages/"
        self.clock = clock
        self._links: dict[str, tuple[float, str | None]] = {}

    def fetch(self, source_id: str) -> SourceDocument:
        if not source_id.isdigit():
            raise PermanentError(f"{self.site.name}: Wagtail page ids are numbers, not {source_id!r}", stage="fetch")
        page = self._page(source_id, {"fields": "*"})
        meta = page.get("meta") or {}
        if not meta.get("html_url"):  # not under any Site: the API lists it, but no browser can reach it
            raise NotPublic(self.site.name, source_id, "page has no public URL")
        parts = (_field_html(v) for k, v in page.items() if k not in ("id", "meta", "title"))
        body = "\n".join(part for part in parts if part)
        body = _EMBED.sub("", self._resolve_links(body))
        if len(body.encode()) > self.max_bytes:
            raise PermanentError(f"{self.site.name}/{source_id}: page is over the {self.max_bytes}-byte cap",
                                 stage="fetch")
        return SourceDocument(
            site=self.site.name, source_id=source_id, url=self._absolute(meta["html_url"]),
            title=str(page.get("title") or ""), html=body, doc_type=str(meta.get("type") or "page"),
            language=meta.get("locale") or self.site.language,
            modified_at=_parse_time(page.get("last_published_at") or meta.get("last_published_at")),
            audience=self.site.audience)

    def list_documents(self, since: datetime | None = None,
                       types: tuple[str, ...] | None = None) -> Iterator[ListedDocument]:
        """Live pages of `types` (Wagtail model names, `app.ArticlePage`), or all; those changed since `since`.

        A page whose modification time the API does not give is always listed: only the pipeline can tell.
        """
        listed = [doc for t in (types or (None,)) for doc in self._listing(t)]
        unknown = sorted({d.doc_type for d in listed if d.modified_at is None} - {"wagtailcore.Page"})
        if unknown and not types:  # ask each type's listing, which knows its model's `api_fields`
            times = {d.source_id: d.modified_at for t in unknown for d in self._listing(t)}
            listed = [replace(d, modified_at=d.modified_at or times.get(d.source_id)) for d in listed]
        for doc in listed:
            if since is None or doc.modified_at is None or doc.modified_at >= since:
                yield doc

    # -- API calls -----------------------------------------------------------------------------------------

    def _page(self, page_id: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        resp = self.client.get(f"{self.api}{page_id}/", params=params)
        if resp.status == 404 and "json" not in resp.headers.get("content-type", ""):
            # Wagtail's API answers 404 in JSON; an HTML 404 means a wrong URL, not a page to delete.
            raise PermanentError(f"{resp.url}: 404 without JSON; is API v2 mounted at /api/v2/?", stage="fetch")
        if resp.status in (401, 403, 404, 410):
            raise NotPublic(self.site.name, page_id, f"API answered {resp.status}: {_message(resp)}")
        data = self._json(resp, "fetch")
        if not isinstance(data.get("id"), int):
            raise PermanentError(f"{resp.url}: not a Wagtail page (no id)", stage="fetch")
        return data

    def _listing(self, page_type: str | None) -> Iterator[ListedDocument]:
        limit, offset, fields = self.page_size, 0, "last_published_at"
        while True:
            # Ordered by id: pages created while we page through land at the end instead of shifting offsets.
            params = {"order": "id", "limit": str(limit), "offset": str(offset),
                      **({"type": page_type} if page_type else {}), **({"fields": fields} if fields else {})}
            resp = self.client.get(self.api, params=params)
            message = _message(resp) if resp.status == 400 else ""
            if "unknown fields" in message and fields:
                fields = ""  # this model has no `last_published_at` in its API fields
                continue
            if "limit" in message and limit > FALLBACK_LIMIT:
                allowed = re.search(r"higher than (\d+)", message)
                limit = max(1, min(limit - 1, int(allowed.group(1)))) if allowed else FALLBACK_LIMIT
                continue
            data = self._json(resp, "list")
            items = data.get("items")
            if not isinstance(items, list) or not all(isinstance(i, dict) and "id" in i for i in items):
                raise PermanentError(f"{resp.url}: not a Wagtail listing (items with ids)", stage="list")
            for item in items:
                yield ListedDocument(source_id=str(item["id"]), doc_type=str(item.get("meta", {}).get("type", "page")),
                                     modified_at=_parse_time(item.get("last_published_at")))
            offset += len(items)
            if not items or offset >= int(data.get("meta", {}).get("total_count", 0)):
                return

    def _json(self, resp: Response, stage: str) -> dict[str, Any]:
        if resp.status != 200:
            raise PermanentError(f"{resp.url} answered {resp.status}: {_message(resp)}", stage=stage)
        data = resp.json()
        if not isinstance(data, dict):
            raise PermanentError(f"{resp.url}: expected a JSON object, got {type(data).__name__}", stage=stage)
        return data

    # -- links ---------------------------------------------------------------------------------------------

    def _resolve_links(self, body: str) -> str:
        def rewrite(match: re.Match[str]) -> str:
            attrs = dict(_ATTR.findall(match.group(1)))
            url = self._link_url(attrs["id"]) if attrs.get("linktype") == "page" and attrs.get("id") else None
            return f'<a href="{html.escape(url)}">' if url else "<a>"

        return _STORED_LINK.sub(rewrite, body)

    def _link_url(self, page_id: str) -> str | None:
        """The public URL of page `page_id`, or None when it is not public (the link text stays, unlinked)."""
        now = self.clock()
        cached = self._links.get(page_id)
        if cached and now - cached[0] < LINK_TTL:
            return cached[1]
        try:
            url = (self._page(page_id).get("meta") or {}).get("html_url") if page_id.isdigit() else None
        except NotPublic:
            url = None
        if len(self._links) > 4096:
            self._links.clear()
        self._links[page_id] = (now, self._absolute(url) if url else None)
        return self._links[page_id][1]

    def _absolute(self, url: str) -> str:
        return urljoin(f"{self.site.url}/", url)


# -- rendering: pure functions of the API's JSON ------------------------------------------------------------

def _field_html(value: Any) -> str:
    """A top-level page field as HTML: StreamFields and rich text, plus plain text that reads as prose."""
    return render_blocks(value) if isinstance(value, list) else _value_html(value)


def render_blocks(blocks: list[Any]) -> str:
    """A StreamField's blocks (`[{"type", "value", "id"}, …]`) as HTML; unknown block types best-effort."""
    out = []
    for block in blocks:
        if not isinstance(block, dict) or "type" not in block:
            out.append(_value_html(block))
            continue
        kind, value = str(block["type"]).lower(), block.get("value")
        if "heading" in kind or kind in ("title", "h2", "h3", "h4", "h5", "h6"):
            out.append(_heading_html(value, str(block.get("id") or "")))
        elif kind in RAW_TYPES and isinstance(value, str):
            out.append(value)
        elif "code" in kind:
            out.append(_code_html(value))
        else:
            out.append(_value_html(value))
    return "\n".join(part for part in out if part)


def _heading_html(value: Any, block_id: str) -> str:
    fields = value if isinstance(value, dict) else {"text": value}
    text = next((str(fields[k]) for k in HEADING_KEYS if isinstance(fields.get(k), str) and fields[k]), "")
    level = str(fields.get("level") or fields.get("size") or "h2").lower()
    level = level if level in ("h1", "h2", "h3", "h4", "h5", "h6") else "h2"
    anchor = str(fields.get("anchor") or "") or slugify(text) or block_id
    return f'<{level} id="{html.escape(anchor)}">{html.escape(text)}</{level}>' if text else ""


def _code_html(value: Any) -> str:
    fields = value if isinstance(value, dict) else {"code": value}
    code = html.escape(str(fields.get("code") or fields.get("text") or ""))
    language = fields.get("language")
    lang = f' class="language-{html.escape(language)}"' if isinstance(language, str) and language else ""
    return f"<pre><code{lang}>{code}</code></pre>" if code else ""


def _value_html(value: Any) -> str:
    """HTML strings as they are; plain text only if it has a space (dates, slugs, choices like "h2" are not prose)."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("<"):
            return text
        return f"<p>{html.escape(text)}</p>" if re.search(r"\s", text) else ""
    if isinstance(value, list):
        return render_blocks(value)
    if isinstance(value, dict) and "meta" not in value:  # a StructBlock; a dict with meta is a linked object
        return "\n".join(part for part in map(_value_html, value.values()) if part)
    return ""


def slugify(text: str) -> str:
    """Django's `slugify` (ASCII), which Wagtail templates use for heading anchors."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text.lower())
    return re.sub(r"[-\s]+", "-", text).strip("-_")


def _parse_time(raw: Any) -> datetime | None:
    if not isinstance(raw, str) or not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def _message(resp: Response) -> str:
    """Wagtail's error text (`{"message": …}`), or the start of whatever came instead."""
    try:
        data = resp.json()
    except PermanentError:
        return resp.body[:120].decode("utf-8", "replace")
    return str(data.get("message", data)) if isinstance(data, dict) else str(data)[:120]
