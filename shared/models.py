"""Plain data passed between pipeline stages.

Messages on the queue carry only a `DocRef`; everything else is produced by a stage and consumed by the next.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class DocRef:
    """Which document: a configured site name and the CMS's own id for it (a path for `files`)."""

    site: str
    source_id: str


@dataclass(frozen=True)
class SourceDocument:
    """A document as fetched from its CMS: public, current, not yet cleaned."""

    site: str
    source_id: str
    url: str
    title: str
    html: str
    doc_type: str = "page"
    language: str | None = None
    modified_at: datetime | None = None
    audience: str = "public"  # "public", or the credential name a private fetch used


@dataclass(frozen=True)
class ListedDocument:
    """One row of a CMS listing (for backfill and reconcile): id and last modification only."""

    source_id: str
    modified_at: datetime | None = None
    doc_type: str = "page"


@dataclass(frozen=True)
class Section:
    """A run of cleaned text under one heading path; `anchor` is the id a browser can scroll to."""

    heading_path: tuple[str, ...]
    anchor: str | None
    text: str


@dataclass(frozen=True)
class Chunk:
    """A piece of a document small enough for the embedder, with what a citation needs.

    `embed_text` is exactly what the embedder reads (title and headings prepended); `content_hash` is the
    sha256 of it, the key under which embeddings are reused.
    """

    ordinal: int
    text: str
    embed_text: str
    heading_path: tuple[str, ...]
    anchor: str | None
    token_count: int
    content_hash: str
    embedding: Any = field(default=None, compare=False)  # a float32 numpy array once embedded
