"""Where documents come from: a `Source` per site kind, behind one small interface.

A source answers two questions: "what is the current public state of document X?" (`fetch`) and "which
documents are published?" (`list_documents`, for backfill and reconcile). It never decides what to do with the
answer; the pipeline does. Not being public is not an error of the source: it raises `NotPublic`, and the
pipeline removes the document.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from shared.models import ListedDocument, SourceDocument

if TYPE_CHECKING:
    from shared.settings import Settings
    from shared.sites import SiteConfig


class Source(Protocol):
    """The contract every site kind implements."""

    def fetch(self, source_id: str) -> SourceDocument:
        """The document's current public state.

        Raises `NotPublic` (401/403/404/410, draft, private, password-protected, trashed),
        `TransientError` (timeouts, 5xx, 429 — after the HTTP client's own retries) or
        `PermanentError` (garbage instead of JSON, a document over the size cap, an id of the wrong form).
        """
        ...

    def list_documents(self, since: datetime | None = None,
                       types: tuple[str, ...] | None = None) -> Iterator[ListedDocument]:
        """Every published document (id, modified time), paging through the CMS; newest changes need not come first."""
        ...


def make_source(site: SiteConfig, settings: Settings) -> Source:
    """The source for `site`'s kind, sharing the settings' timeouts and size cap."""
    from shared.sources.http import HttpClient

    if site.kind in ("wordpress", "wagtail"):
        client = HttpClient(timeout=settings.http_timeout, retries=settings.http_retries,
                            max_bytes=settings.max_document_bytes * 4)
        if site.kind == "wordpress":
            from shared.sources.wordpress import WordPressSource

            return WordPressSource(site, client, max_bytes=settings.max_document_bytes)
        from shared.sources.wagtail import WagtailSource

        return WagtailSource(site, client, max_bytes=settings.max_document_bytes)
    if site.kind == "wxr":
        from shared.sources.wxr import WxrSource

        return WxrSource(site, max_bytes=settings.max_document_bytes)
    from shared.sources.files import FilesSource

    return FilesSource(site, max_bytes=settings.max_document_bytes)
