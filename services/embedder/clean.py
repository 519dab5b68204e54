"""clean: turn a CMS page's HTML into plain-text sections, each with its heading path and deep-link anchor.

Sections are what make citations precise (`url#anchor`) and chunk boundaries stable, so headings are kept as
structure rather than as text. `html_sections` drops chrome and splits at headings; html2text renders each
body (lists, code blocks and tables stay readable) and we normalise the result, so the same content always
yields the same text, whatever the CMS's markup habits — and the same chunk hashes downstream.
"""

from __future__ import annotations

import re
import unicodedata
from html import unescape

import html2text

from services.embedder.html_sections import INVISIBLE, split_sections
from shared.models import Section

# Every Unicode space separator (nbsp, thin, narrow nbsp, ideographic…) reads as a plain space.
SPACES = dict.fromkeys(map(ord, "\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
                               "\u200a\u202f\u205f\u3000"), " ")
INTERNAL_SPACES = re.compile(r"(?<=\S) {2,}")
BLANK_RUNS = re.compile(r"\n{3,}")


class _PlainText(html2text.HTML2Text):
    """html2text for embedding, not for re-rendering: no Markdown escapes (`1\\.`, `\\-`) added to text."""

    def __init__(self) -> None:
        super().__init__(bodywidth=0)
        self.ignore_links = True
        self.ignore_images = True
        self.ignore_emphasis = True
        self.unicode_snob = True
        self.single_line_break = False

    def handle_data(self, data: str, entity_char: bool = False) -> None:
        # html2text escapes Markdown syntax unless told the data is an entity; ours is plain text.
        super().handle_data(data, entity_char=True)


def clean(html: str, title: str) -> list[Section]:
    """Sections in document order; text before the first heading has path () and no anchor; empty ones go."""
    title_key = _key(clean_title(title))
    path: list[tuple[int, str]] = []
    seen_h1 = False
    sections: list[Section] = []
    for raw in split_sections(html):
        if raw.level:
            heading = normalise_inline(raw.heading)
            while path and path[-1][0] >= raw.level:
                path.pop()
            if raw.level == 1 and not seen_h1 and _same_title(_key(heading), title_key):
                pass  # the page's own title: already the first line of every chunk's header
            elif heading:
                path.append((raw.level, heading))
            seen_h1 = seen_h1 or raw.level == 1
        text = normalise_block(_PlainText().handle(raw.body))
        if text:
            sections.append(Section(tuple(h for _, h in path), raw.anchor, text))
    return sections


def clean_title(s: str) -> str:
    """A title as the CMS sends it (`Caf&eacute;&nbsp;&#8217;s`) made plain text on one line."""
    return normalise_inline(unescape(s))


def normalise_inline(s: str) -> str:
    """NFC, invisible characters dropped, every whitespace run one space, trimmed."""
    return " ".join(unicodedata.normalize("NFC", s).translate(INVISIBLE).split())


def normalise_block(s: str) -> str:
    """Like `normalise_inline` but keeps line structure: one blank line at most, indentation kept for code."""
    s = unicodedata.normalize("NFC", s.replace("\r\n", "\n").replace("\r", "\n")).translate(INVISIBLE)
    lines = []
    for line in s.translate(SPACES).split("\n"):
        line = line.rstrip()
        if not line.startswith(("    ", "\t")):  # html2text indents code blocks by four spaces: leave those
            line = INTERNAL_SPACES.sub(" ", line)
        lines.append(line)
    return BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip("\n")


def _key(s: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", s.casefold()).split())


def _same_title(heading: str, title: str) -> bool:
    """True when an h1 repeats the title: as is, numbered (`4. Title`), or inside `Title — Site name`."""
    if not heading or not title:
        return False
    unnumbered = re.sub(r"^[\d ]+", "", heading)
    return title in (heading, unnumbered) or title.startswith(heading + " ") or title.endswith(" " + heading)
