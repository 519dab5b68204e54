"""Cut raw CMS HTML into heading-delimited bodies, dropping chrome and junk, and find each heading's anchor.

html2text renders text well but knows nothing of sections, anchors or site chrome, so this stdlib
`html.parser` pass decides what is content and where a section starts; `clean` then renders each body.
Real pages are sloppy (unclosed `<p>`/`<li>`, stray `</div>`, Word's `<o:p>`), so we keep our own stack of
open elements with HTML's common implied closes, and a per-tag count so a stray end tag is ignored in O(1):
the whole pass is linear in the document. Bodies are re-serialised without attributes (no inline styles,
no `mso-` junk) and with every tag balanced, which is all html2text needs.
"""

from __future__ import annotations

import html
import re
from collections import Counter
from dataclasses import dataclass, field
from html.parser import HTMLParser

VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "keygen", "link", "meta", "param",
                  "source", "track", "wbr"})
DROP = frozenset({"script", "style", "noscript", "template", "svg", "iframe", "object", "canvas", "audio", "video",
                  "nav", "select", "textarea", "button", "title", "xml", "dialog"})
CHROME_ROLES = frozenset({"navigation", "banner", "contentinfo", "complementary", "search"})
CHROME_CLASSES = frozenset({"headerlink", "sphinxsidebar", "widget-area", "breadcrumb", "breadcrumbs", "skip-link",
                            "screen-reader-text", "sharedaddy", "post-navigation", "nav-links", "comment-respond"})
HEADINGS = {f"h{n}": n for n in range(1, 7)}
BLOCKS = frozenset({"address", "article", "aside", "blockquote", "div", "dl", "fieldset", "figure", "footer", "form",
                    "header", "hr", "main", "nav", "ol", "p", "pre", "section", "table", "ul", *HEADINGS})
# Start tag -> open elements it closes when one of them is the current node (HTML's "implied end tags").
IMPLIED: dict[str, set[str]] = {b: {"p"} for b in BLOCKS} | {h: {"p", *HEADINGS} for h in HEADINGS}
IMPLIED |= {"li": {"li"}, "dt": {"dt", "dd"}, "dd": {"dt", "dd"}, "td": {"td", "th"}, "th": {"td", "th"},
            "tr": {"td", "th", "tr"}, "option": {"option"}}
# WordPress shortcodes: a tag with `key=` attributes, a closer, or a bare opener known to be one.
SHORTCODE = re.compile(r"\[(/?)([A-Za-z][\w-]*)((?:\s+[\w-]+=[^\[\]<>]*)?)\s*/?\]")
SHORTCODE_WITH_BODY = re.compile(r"\[(embed|video|audio)\b[^\[\]<>]*\][^\[]{0,4096}\[/\1\]")
KNOWN_SHORTCODES = frozenset({"gallery", "caption", "embed", "playlist", "audio", "video", "toc", "contact-form-7"})
# Invisible characters that only split words for a tokenizer (ZWJ/ZWNJ are kept: emoji and Persian need them).
INVISIBLE = dict.fromkeys(map(ord, "\u200b\u2060\ufeff\u00ad\u200e\u200f"))


@dataclass
class RawSection:
    """One heading (level 0 = text before the first heading) and its body as balanced, attribute-free HTML."""

    level: int
    heading: str
    anchor: str | None
    body: str


@dataclass
class _Heading:
    level: int
    depth: int
    own_id: str | None
    inner_id: str | None = None
    parts: list[str] = field(default_factory=list)


def split_sections(raw: str) -> list[RawSection]:
    """The document's sections in order; the first (level 0) holds whatever precedes the first heading."""
    parser = _Splitter(raw)
    parser.feed(raw)
    if parser.rawdata.startswith("<!--"):
        parser.rawdata = ""  # an unclosed comment runs to the end, as in a browser (html.parser makes it text)
    parser.close()
    return parser.finish()


def _ident(tag: str, a: dict[str, str]) -> str | None:
    """The id a browser scrolls to for this element: `id`, or the legacy `<a name>`."""
    return a.get("id") or (a.get("name") if tag == "a" else None) or None


def _wraps_content_in_form(raw: str) -> bool:
    """ASP.NET-style pages wrap the whole body in a `<form>`; dropping forms there would drop the page."""
    in_form = False
    for m in re.finditer(r"<(/?)(form|h[1-6])\b", raw, re.IGNORECASE):
        if m[2].lower() == "form":
            in_form = not m[1]
        elif in_form and not m[1]:
            return True
    return False


class _Splitter(HTMLParser):
    """One streaming pass: `out` collects the current body; a heading's end starts the next section."""

    def __init__(self, raw: str) -> None:
        super().__init__(convert_charrefs=True)
        self.keep_forms = _wraps_content_in_form(raw)
        self.closers = {m[1].lower() for m in re.finditer(r"\[/([A-Za-z][\w-]*)\]", raw)}
        self.stack: list[str] = []
        self.open = Counter[str]()
        self.skip_at: int | None = None  # stack index of the dropped element we are inside
        self.heading: _Heading | None = None
        self.section_ids: list[tuple[int, str]] = []  # (stack index, id) of enclosing <section id>
        self.claimed: set[str] = set()
        self.marker: str | None = None  # id of an element just before, with no text since (`<span id>`)
        self.out: list[str] = []
        self.done: list[RawSection] = []
        self.current = RawSection(0, "", None, "")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if ":" in tag:  # Word's <o:p>, <v:shape>…: transparent
            return
        closes = IMPLIED.get(tag, ())
        while self.stack and self.stack[-1] in closes:
            self._pop()
        void = tag in VOID
        if not void:
            self.stack.append(tag)
            self.open[tag] += 1
        depth = len(self.stack) - 1
        if self.skip_at is not None:
            return
        a = {k: v or "" for k, v in attrs}
        if self._is_chrome(tag, a):
            if not void:
                self.skip_at = depth
        elif self.heading is not None:
            self.heading.inner_id = self.heading.inner_id or _ident(tag, a)
            if tag == "br":
                self.heading.parts.append(" ")
        elif tag in HEADINGS:
            self.heading = _Heading(HEADINGS[tag], depth, a.get("id") or None)
        else:
            ident = _ident(tag, a)
            if ident:
                self.marker = ident
                if tag == "section" or "section" in a.get("class", "").split():
                    self.section_ids.append((depth, ident))
            if tag in ("br", "hr"):
                self.out.append(f"<{tag}>")
            elif not void:
                start = a.get("start", "") if tag == "ol" else ""
                self.out.append(f'<ol start="{html.escape(start)}">' if start.isdigit() else f"<{tag}>")

    def handle_endtag(self, tag: str) -> None:
        if self.open[tag]:
            while self._pop() != tag:
                pass

    def handle_data(self, data: str) -> None:
        if self.skip_at is not None:
            return
        if not (self.open["pre"] or self.open["code"]):
            data = SHORTCODE.sub(self._shortcode, SHORTCODE_WITH_BODY.sub("", data))
        if self.heading is not None:
            self.heading.parts.append(data)
            return
        if data.strip():
            self.marker = None
        self.out.append(html.escape(data, quote=False))

    def finish(self) -> list[RawSection]:
        while self.stack:
            self._pop()
        self._start_section(None)
        return self.done

    def _shortcode(self, m: re.Match[str]) -> str:
        closing, name, attrs = m[1], m[2].lower(), m[3]
        known = name in KNOWN_SHORTCODES or name in self.closers or "_" in name
        return "" if closing or attrs or known else m[0]

    def _is_chrome(self, tag: str, a: dict[str, str]) -> bool:
        if tag in DROP or (tag == "form" and not self.keep_forms):
            return True
        # A page's banner and footer are chrome; an article's header holds its title, a quote's footer its source.
        if tag == "header" and not (self.open["article"] or self.open["main"]):
            return True
        if tag == "footer" and not (self.open["blockquote"] or self.open["figure"]):
            return True
        if a.get("role", "").lower() in CHROME_ROLES or "hidden" in a or a.get("aria-hidden") == "true":
            return True
        style = a.get("style", "").replace(" ", "").lower()
        return "display:none" in style or not CHROME_CLASSES.isdisjoint(a.get("class", "").split())

    def _pop(self) -> str:
        tag = self.stack.pop()
        self.open[tag] -= 1
        depth = len(self.stack)
        while self.section_ids and self.section_ids[-1][0] >= depth:
            self.section_ids.pop()
        if self.skip_at is not None:
            if depth == self.skip_at:
                self.skip_at = None
        elif self.heading is not None:
            if depth == self.heading.depth:
                self._end_heading(self.heading)
        else:
            self.out.append(f"</{tag}>")
        return tag

    def _end_heading(self, h: _Heading) -> None:
        self.heading = None
        text = " ".join("".join(h.parts).translate(INVISIBLE).split())
        if not text:
            return  # an empty heading (an icon, a spacer) is no section boundary
        enclosing = self.section_ids[-1][1] if self.section_ids else None
        unclaimed = enclosing if enclosing not in self.claimed else None
        anchor = h.own_id or h.inner_id or unclaimed or self.marker or enclosing
        if anchor:
            self.claimed.add(anchor)
        self.marker = None
        self._start_section(RawSection(h.level, text, anchor, ""))

    def _start_section(self, nxt: RawSection | None) -> None:
        """Close what is open so the finished body is balanced; reopen it in the next one."""
        self.current.body = "".join(self.out) + "".join(f"</{t}>" for t in reversed(self.stack))
        self.done.append(self.current)
        if nxt is not None:
            self.current = nxt
            self.out = [f"<{t}>" for t in self.stack]
