"""Citations: keep an answer's markers and links honest, streamed or whole.

An answer may only cite passages retrieved for its request, by marker `[n]` (n = passage number), and may only
link to pages it cites. Models drift from that (a marker for passage 9 of 6, a URL remembered from training, a
link an injected instruction asked for), so the text is filtered here rather than trusted:

- markers that name no retrieved passage are dropped; `[1, 2]` becomes `[1][2]`;
- any URL (with a scheme, `www.`, or a bare host with a common top-level domain) that is not the URL of a
  retrieved page is replaced by `(link removed)`.

`StreamFilter` applies the same rules to a token stream by releasing text only up to the last whitespace, so
a URL or marker split across tokens is judged whole before the visitor sees any of it.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from services.api.search import Hit

MARKER_GROUP = re.compile(r"(?<![\w)\]])\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]((?:\[\d{1,3}\])*)")
URL = re.compile(
    r"(?:https?://|www\.)[^\s<>\"'\])]+"
    r"|\b(?:[a-z0-9-]+\.)+(?:com|org|net|io|dev|app|co|info|biz|example|xyz|ru|cn|uk|de|fr|me|ly|gg|to|sh)"
    r"\b(?:/[^\s<>\"'\])]*)?", re.IGNORECASE)
LINK_REMOVED = "(link removed)"


@dataclass(frozen=True)
class Citation:
    n: int
    title: str
    url: str
    snippet: str
    section: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"n": self.n, "title": self.title, "section": self.section, "url": self.url, "snippet": self.snippet}


def citations_for(hits: list[Hit]) -> list[Citation]:
    """The retrieved passages as numbered citations: [1] is the first hit."""
    return [Citation(n, h.title or h.url, h.link, h.snippet(), _section(h)) for n, h in enumerate(hits, 1)]


def _section(hit: Hit) -> str:
    """The passage's own heading (the page title is `title`), so two sections of one page read apart."""
    path = [x for x in hit.heading_path if x and x != hit.title]
    return path[-1] if path else ""


def allowed_urls(hits: list[Hit]) -> set[str]:
    """The URLs an answer may contain: the retrieved pages', with and without their section anchors."""
    out: set[str] = set()
    for h in hits:
        for u in (h.url, h.link):
            if u:
                out.add(_norm(u))
    return out


def clean_text(text: str, passages: int, allowed: Collection[str]) -> str:
    """`text` with invalid markers dropped, marker lists split, and foreign URLs replaced."""

    def markers(m: re.Match[str]) -> str:
        numbers = [int(x) for x in re.findall(r"\d+", m.group(0))]
        return "".join(f"[{n}]" for n in dict.fromkeys(numbers) if 1 <= n <= passages)

    def urls(m: re.Match[str]) -> str:
        url = m.group(0).rstrip(".,;:!?")
        tail = m.group(0)[len(url):]
        return (url if _norm(url) in allowed else LINK_REMOVED) + tail

    return MARKER_GROUP.sub(markers, URL.sub(urls, text))


def cited_numbers(text: str) -> list[int]:
    """The passage numbers an (already cleaned) answer cites, in order of first use."""
    found: list[int] = []
    for m in MARKER_GROUP.finditer(text):
        found.extend(int(x) for x in re.findall(r"\d+", m.group(0)))
    return list(dict.fromkeys(found))


def _norm(url: str) -> str:
    url = url.strip().lower()
    url = re.sub(r"^https?://", "", url)
    url = url.removeprefix("www.").split("#", 1)[0]  # any section of a retrieved page is that page
    return url.rstrip("/")


class StreamFilter:
    """Applies `clean_text` to a stream: `feed` returns the text that is safe to show now, `flush` the rest."""

    def __init__(self, passages: int, allowed: Collection[str]) -> None:
        self.passages, self.allowed = passages, allowed
        self.pending = ""
        self.shown: list[str] = []

    def feed(self, piece: str) -> str:
        self.pending += piece
        cut = max(self.pending.rfind(" "), self.pending.rfind("\n"))
        opened = self.pending.rfind("[", 0, cut)
        if opened > self.pending.rfind("]", 0, cut) and cut - opened < 40:  # a marker list still open: hold it
            cut = opened
        if cut <= 0:
            return ""
        ready, self.pending = self.pending[:cut], self.pending[cut:]
        return self._emit(ready)

    def flush(self) -> str:
        ready, self.pending = self.pending, ""
        return self._emit(ready)

    def _emit(self, text: str) -> str:
        out = clean_text(text, self.passages, self.allowed) if text else ""
        self.shown.append(out)
        return out

    @property
    def text(self) -> str:
        """Everything released so far (the final answer once flushed)."""
        return "".join(self.shown)
