"""Citations: keep an answer's markers and links honest, and the system prompt out of it, streamed or whole.

An answer may only cite passages retrieved for its request, by marker `[n]` (n = passage number), and may only
link to pages it cites. Models drift from that (a marker for passage 9 of 6, a URL remembered from training, a
link an injected instruction asked for, a recital of the prompt a passage asked for), so the text is filtered,
never trusted, by three stages in turn:

1. markup.Markers drops markers that name no retrieved passage; `[1, 2]` becomes `[1][2]`;
2. guard.PromptGuard removes runs of 8+ words of the system prompt, with the markers and links inside them;
3. markup.Links replaces by `(link removed)` every URL whose page is not the page of a passage the answer
   cites. A URL may come before the marker that cites it, so it waits for that marker until its sentence ends.

Markers come first so that the guard judges the words a visitor would see (`[99]` sprinkled into a recital is
gone before the guard looks); links come last so that only markers that survive the guard count as citations.
`StreamFilter` is the one implementation and `clean_text` feeds it a whole text at once, so the non-streaming
path cannot drift from the stream. Each stage judges only text that more tokens cannot change (whole words,
URLs, marker lists), so the stream spells out exactly the whole-text result however the model's tokens split
it. Text without URLs leaves once the seven words after it are complete (the guard's hold); a URL waiting for
its marker holds back what follows it until its sentence ends, `markup.LINK_WORDS` words at most.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from services.api.guard import PromptGuard
from services.api.markup import LINK_REMOVED, MARKER_GROUP, URL, Links, Markers
from services.api.search import Hit

__all__ = ["LINK_REMOVED", "URL", "Citation", "StreamFilter", "citations_for", "cited_numbers", "clean_text",
           "passage_pages"]


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


def passage_pages(hits: list[Hit]) -> list[str]:
    """The page of each passage, passage n first at n-1: the pages a marker `[n]` lets the answer link to."""
    return [h.url for h in hits]


def clean_text(text: str, pages: Sequence[str]) -> str:
    """`text` filtered as the stream would filter it; `pages[n-1]` is the page of passage n."""
    f = StreamFilter(pages)
    return f.feed(text) + f.flush()


def cited_numbers(text: str) -> list[int]:
    """The passage numbers an (already cleaned) answer cites, in order of first use."""
    found: list[int] = []
    for m in MARKER_GROUP.finditer(text):
        found.extend(int(x) for x in re.findall(r"\d+", m.group(0)))
    return list(dict.fromkeys(found))


class StreamFilter:
    """Markers, guard, links in turn: `feed` returns the text that is safe to show now, `flush` the rest.

    `pages[n-1]` is the page of passage n (`passage_pages(hits)`); any form of its URL will do.
    """

    def __init__(self, pages: Sequence[str]) -> None:
        self.markers, self.guard, self.links = Markers(len(pages)), PromptGuard(), Links(pages)
        self.shown: list[str] = []

    def feed(self, piece: str) -> str:
        return self._show(self.links.feed(self.guard.feed(self.markers.feed(piece))))

    def flush(self) -> str:
        guarded = self.guard.feed(self.markers.flush()) + self.guard.flush()
        return self._show(self.links.feed(guarded) + self.links.flush())

    def _show(self, out: str) -> str:
        self.shown.append(out)
        return out

    @property
    def text(self) -> str:
        """Everything released so far (the final answer once flushed)."""
        return "".join(self.shown)
