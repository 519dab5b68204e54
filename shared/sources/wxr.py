"""Serve documents from a WordPress export file (WXR), for sites known only through an export.

A WXR file holds every item whatever its status: drafts, private posts, even the plain-text passwords of
protected posts. This source serves only what a visitor of the live site could read — status `publish`, no
password, a content type (not attachments, menu items or the block theme's internal types) — and answers
`NotPublic` for the rest, as the REST source does. Ids are the REST source's ("pages:12", "posts:3"), so a site
can move from its export to its live API without being re-indexed under new ids.

The content is `content:encoded`, i.e. WordPress's stored `post_content`: blocks and shortcodes are not rendered
and classic-editor paragraphs have no `<p>` (WordPress adds them when it renders), unlike the REST source's
`content.rendered`.

The file is parsed once per (path, size, mtime) and shared by every instance, so a backfill of a thousand
documents costs one parse, and a replaced file is picked up by the next call.
"""

from __future__ import annotations

import functools
import html
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from shared.errors import ConfigError, NotPublic, PermanentError
from shared.models import ListedDocument, SourceDocument
from shared.sites import SiteConfig

SOURCE_ID_RE = re.compile(r"^(?:(?P<base>[a-z0-9_-]+):)?(?P<id>[1-9][0-9]*)$")
# Exported post types that are site machinery rather than something a visitor reads as a page.
INTERNAL_TYPES = frozenset({
    "attachment", "nav_menu_item", "revision", "custom_css", "customize_changeset", "oembed_cache",
    "user_request", "wp_block", "wp_template", "wp_template_part", "wp_global_styles", "wp_navigation",
})
REST_BASES = {"post": "posts", "page": "pages"}


@dataclass(frozen=True)
class WxrItem:
    """The fields of one `<item>` that decide visibility and make a document."""

    post_id: int
    post_type: str
    status: str
    has_password: bool
    title: str
    link: str
    html: str
    modified_at: datetime | None

    def why_not_public(self) -> str | None:
        if self.post_type in INTERNAL_TYPES:
            return f"a {self.post_type}, not a content type"
        if self.status != "publish":
            return f"status is {self.status!r}"
        return "password-protected" if self.has_password else None


@dataclass(frozen=True)
class WxrFile:
    """A parsed export: its items by post id, and the language its channel declares."""

    items: dict[int, WxrItem]
    language: str | None


class WxrSource:
    """A `Source` reading one WXR file."""

    def __init__(self, site: SiteConfig, max_bytes: int) -> None:
        if site.path is None:
            raise ConfigError([f"site {site.name!r}: kind wxr needs path"])
        self.site = site
        self.path = Path(site.path)
        self.max_bytes = max_bytes

    def fetch(self, source_id: str) -> SourceDocument:
        """The item if a visitor could read it; a bare id ("12") finds it whatever its type."""
        m = SOURCE_ID_RE.match(source_id.strip())
        if not m:
            raise PermanentError(f"{self.site.name}/{source_id}: not a WXR id (expected e.g. 'pages:12')",
                                 stage="fetch")
        wxr = self._load()
        item = wxr.items.get(int(m["id"]))
        if item is None or (m["base"] and self.rest_base(item.post_type) != m["base"]):
            raise NotPublic(self.site.name, source_id, f"no such item in {self.path.name}")
        canonical = f"{self.rest_base(item.post_type)}:{item.post_id}"
        if reason := item.why_not_public():
            raise NotPublic(self.site.name, canonical, reason)
        if len(item.html.encode("utf-8")) > self.max_bytes:
            raise PermanentError(f"{self.site.name}/{canonical}: content is over the {self.max_bytes}-byte cap",
                                 stage="fetch")
        return SourceDocument(
            site=self.site.name, source_id=canonical, url=item.link, title=item.title, html=item.html,
            doc_type=item.post_type, language=self.site.language or wxr.language,
            modified_at=item.modified_at, audience="public",
        )

    def list_documents(self, since: datetime | None = None,
                       types: tuple[str, ...] | None = None) -> Iterator[ListedDocument]:
        """Public items (of `types`, REST bases such as "pages", when given) modified strictly after `since`."""
        for post_id, item in sorted(self._load().items.items()):
            base = self.rest_base(item.post_type)
            if item.why_not_public() or (types and base not in types):
                continue
            if since is not None and item.modified_at is not None and item.modified_at <= since:
                continue
            yield ListedDocument(source_id=f"{base}:{post_id}", modified_at=item.modified_at,
                                 doc_type=item.post_type)

    def rest_base(self, post_type: str) -> str:
        """The REST base WordPress would use: posts, pages, a configured base, else the type plus "s"."""
        if post_type in REST_BASES:
            return REST_BASES[post_type]
        return post_type if post_type in self.site.post_types else f"{post_type}s"

    def _load(self) -> WxrFile:
        try:
            st = self.path.stat()
        except OSError as exc:
            raise PermanentError(f"{self.site.name}: cannot read {self.path} ({exc.strerror})", stage="fetch") from None
        return parse_wxr(str(self.path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=4)
def parse_wxr(path: str, size: int, mtime_ns: int) -> WxrFile:
    """Parse `path` (size and mtime are the cache key); `PermanentError` if it is not XML."""
    items: dict[int, WxrItem] = {}
    language = None
    try:
        for _, elem in ET.iterparse(path, events=("end",)):
            if elem.tag == "language" and language is None:
                language = (elem.text or "").strip() or None
            if elem.tag != "item":
                continue
            fields = {_local(child.tag): (child.text or "") for child in elem}
            if fields.get("wp:post_id", "").isdigit():
                item = _item(fields)
                items[item.post_id] = item
            elem.clear()  # keep memory flat on large exports
    except ET.ParseError as exc:
        raise PermanentError(f"{path} is not a valid WXR (XML) file: {exc}", stage="fetch") from None
    return WxrFile(items, language)


def _local(tag: str) -> str:
    """"{http://wordpress.org/export/1.2/}status" → "wp:status", whatever the WXR version (1.0 to 1.2)."""
    uri, _, name = tag[1:].rpartition("}") if tag.startswith("{") else ("", "", tag)
    if "wordpress.org/export" in uri:
        return f"{'excerpt' if uri.rstrip('/').endswith('excerpt') else 'wp'}:{name}"
    prefix = {"http://purl.org/rss/1.0/modules/content/": "content",
              "http://purl.org/dc/elements/1.1/": "dc"}.get(uri, "")
    return f"{prefix}:{name}" if prefix else name


def _item(f: dict[str, str]) -> WxrItem:
    return WxrItem(
        post_id=int(f["wp:post_id"]), post_type=f.get("wp:post_type", "post").strip(),
        status=f.get("wp:status", "").strip(), has_password=bool(f.get("wp:post_password", "").strip()),
        title=html.unescape(f.get("title", "").strip()), link=f.get("link", "").strip(),
        html=f.get("content:encoded", ""),
        modified_at=_gmt(f.get("wp:post_modified_gmt")) or _gmt(f.get("wp:post_date_gmt")),
    )


def _gmt(value: str | None) -> datetime | None:
    """WXR's "2024-01-15 09:01:00" (UTC) as an aware datetime; None for WordPress's "0000-00-00 00:00:00"."""
    try:
        return datetime.strptime((value or "").strip(), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None
