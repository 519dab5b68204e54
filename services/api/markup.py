"""markup: the marker and link rules of an answer, as two stages of a stream.

`Markers` (before the prompt guard) keeps only the numbers of retrieved passages in each marker group (`[1]`,
`[1, 2]`, `[1][3, 4]`; not `a[1]` or `list[int]`), once each, written `[1][2]`; a group naming none disappears.
Adjacent groups are one group, so dropping `[9]` from `[9][1, 0]` cannot expose `[1, 0]` as a new marker. It
runs first so that the guard sees the words a visitor will see: `[99]` sprinkled into a recital is dropped
before the guard looks, and cannot break the recital's runs of prompt words.

`Links` (after the guard) keeps a URL (a scheme, `www.`, or a bare host with a common top-level domain) only if
its page (`page_of`: no `#anchor`, case, scheme, `www.` or trailing `/`) is the page of a passage cited by
then; otherwise it becomes `(link removed)`. "By then": a URL of a retrieved page not yet cited waits until a
marker citing its page arrives (kept), or its sentence ends, or `LINK_WORDS` words have passed (removed); a
URL of no retrieved page is removed on sight. A sentence ends at `.`, `!` or `?` followed by whitespace, or at
a newline, but markers that follow it directly still count: "…at https://x/a. [1] Next" keeps the link.

Splitting the stream: each stage judges text only up to its last whitespace (`Markers` through it, `Links` to
the start of that whitespace run, so it sees each run whole), and never from inside a marker list that may
still be open (`[1, ` may become `[1, 2]`). No URL or marker can contain that whitespace, and no pattern looks
past it, so whatever comes next every match, word and whitespace run is found exactly as in the whole text
(the character before the judged text is kept for the patterns' look-behind).
The rules then see the same items in the same order and decide the same way: the stream spells out the
whole-text result however it was split.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

MARKER_GROUP = re.compile(r"(?<![\w)\]])(?:\[\d{1,3}(?:\s*,\s*\d{1,3})*\])+")
URL = re.compile(  # a glued prefix goes with the link, or removing "www.x" from "evil.comwww.x" exposes evil.com
    r"(?<![\w.-])[\w.-]*(?:https?://|www\.)[^\s<>\"'\])]+"
    r"|\b(?:[a-z0-9-]+\.)+(?:com|org|net|io|dev|app|co|info|biz|example|xyz|ru|cn|uk|de|fr|me|ly|gg|to|sh)"
    r"\b(?:/[^\s<>\"'\])]*)?", re.IGNORECASE)
SCAN = re.compile(f"(?P<url>{URL.pattern})|(?P<marker>{MARKER_GROUP.pattern})", re.IGNORECASE)
OPEN_LIST = re.compile(r"\[\d{1,3}(?:\s*,\s*\d{1,3})*(?:\s*,)?\s*")  # a marker list more text may still close
ITEM = re.compile(r"\s+|\S+")
LAST_SPACE = re.compile(r"\s(?=\S*\Z)")  # the last whitespace character
LAST_RUN = re.compile(r"(?<!\s)\s+(?=\S*\Z)")  # the last whitespace run, from its start
SENTENCE_END = re.compile(r"[.!?][)\"'”’]*$")
LINK_REMOVED = "(link removed)"
LINK_WORDS = 40


def page_of(url: str) -> str:
    """The page a URL names: any section (`#anchor`), scheme, `www.` or trailing `/` of a page is that page."""
    url = re.sub(r"^https?://", "", url.strip().lower())
    return url.removeprefix("www.").split("#", 1)[0].rstrip("/")


def marker_numbers(group: str, passages: int) -> list[int]:
    """The passage numbers a marker group names that exist, once each, in order."""
    return [n for n in dict.fromkeys(int(x) for x in re.findall(r"\d+", group)) if 1 <= n <= passages]


class Markers:
    """`feed` returns the text whose marker groups are cleaned, `flush` the rest."""

    def __init__(self, passages: int) -> None:
        self.passages = passages
        self.buf = " "  # buf[0] is the character before the text not yet judged

    def feed(self, text: str) -> str:
        self.buf += text
        return self._clean(_judgeable(self.buf, through_space=True))

    def flush(self) -> str:
        return self._clean(len(self.buf))

    def _clean(self, end: int) -> str:
        out: list[str] = []
        pos = 1
        for m in MARKER_GROUP.finditer(self.buf, 1, end):  # inside URLs too, so a kept link holds no false marker
            out += (self.buf[pos:m.start()], "".join(f"[{n}]" for n in marker_numbers(m.group(), self.passages)))
            pos = m.end()
        out.append(self.buf[pos:end])
        self.buf = self.buf[end - 1:]
        return "".join(out)


@dataclass
class _Link:
    url: str
    page: str
    gaps: int  # whitespace runs seen before it, to count the words since
    keep: bool | None = None  # None: waiting for a marker that cites its page


class Links:
    """`feed` returns the text whose links are decided, `flush` the rest; `pages[n-1]` is the page of passage n."""

    def __init__(self, pages: Sequence[str]) -> None:
        self.pages = [page_of(p) for p in pages]
        self.cited: set[str] = set()
        self.buf = " "  # buf[0] is the character before the text not yet judged
        self.out: deque[str | _Link] = deque()
        self.waiting: list[_Link] = []
        self.gaps = 0
        self.punct = False  # the last word ends a sentence if whitespace follows
        self.ending = False  # a sentence has ended: only whitespace and markers since

    def feed(self, text: str) -> str:
        self.buf += text
        self._judge(_judgeable(self.buf, through_space=False))
        return self._release()

    def flush(self) -> str:
        self._judge(len(self.buf))
        self._settle()
        return self._release()

    def _judge(self, end: int) -> None:
        pos = 1
        for m in SCAN.finditer(self.buf, 1, end):
            self._plain(self.buf[pos:m.start()])
            if m.lastgroup == "url":
                self._url(m.group())
            else:
                self._marker(m.group())
            pos = m.end()
        self._plain(self.buf[pos:end])
        self.buf = self.buf[end - 1:]

    def _plain(self, text: str) -> None:
        for m in ITEM.finditer(text):
            if m.group().isspace():
                self._space(m.group())
            else:
                self._word(m.group())

    def _space(self, space: str) -> None:
        self.ending = self.ending or self.punct or "\n" in space
        self.punct, self.gaps = False, self.gaps + 1
        for link in self.waiting:
            if link.keep is None and self.gaps - link.gaps > LINK_WORDS:
                link.keep = False
        self.out.append(space)

    def _word(self, word: str) -> None:
        if self.ending:
            self._settle()
        self.punct = bool(SENTENCE_END.search(word))
        self.out.append(word)

    def _url(self, raw: str) -> None:
        if self.ending:
            self._settle()
        url = raw.rstrip(".,;:!?")
        page = page_of(url)
        link = _Link(url, page, self.gaps, True if page in self.cited else None if page in self.pages else False)
        self.out.append(link)
        if link.keep is None:
            self.waiting.append(link)
        self.punct = False
        if tail := raw[len(url):]:
            self._word(tail)

    def _marker(self, group: str) -> None:
        numbers = marker_numbers(group, len(self.pages))
        self.cited.update(self.pages[n - 1] for n in numbers)
        for link in self.waiting:
            if link.keep is None and link.page in self.cited:
                link.keep = True
        self.punct = False
        self.out.append("".join(f"[{n}]" for n in numbers))

    def _settle(self) -> None:
        """The sentence (or the text) is over: links still waiting were not cited in time."""
        for link in self.waiting:
            if link.keep is None:
                link.keep = False
        self.waiting, self.ending = [], False

    def _release(self) -> str:
        out: list[str] = []
        while self.out and not (isinstance(self.out[0], _Link) and self.out[0].keep is None):
            item = self.out.popleft()
            out.append(item if isinstance(item, str) else item.url if item.keep else LINK_REMOVED)
        self.waiting = [link for link in self.waiting if link.keep is None]
        return "".join(out)


def _judgeable(buf: str, *, through_space: bool) -> int:
    """Where judging stops for now: after the last whitespace character, or at the start of its run; and before
    a marker list that may still be open there. Regular expressions, not loops, so a long word costs little."""
    end = len(buf)
    while m := LAST_SPACE.search(buf, 1, end):
        space = m.start()
        opened = buf.rfind("[", 1, space)
        if opened >= 0 and OPEN_LIST.fullmatch(buf, opened, space + 1):
            end = opened
            continue
        if through_space:
            return space + 1
        run = LAST_RUN.search(buf, 1, space + 1)
        return run.start() if run else 1
    return 1
