"""A folder of HTML files (a static site, Sphinx output such as Debian's python3.11-doc) as a `Source`.

The source id is the file's path relative to the folder, in POSIX form (`tutorial/controlflow.html`), so ids
are stable across machines and readable in citations. Only the main content is passed on (`<main>`, an element
with `role="main"`, Sphinx's `div.body`, else `<body>`): navigation, sidebars and footers repeat on every page
and would otherwise crowd the search results. Parsing uses the stdlib's lenient `html.parser`; the inner HTML
is cut from the original text, not re-serialised, so the cleaning stage sees the author's markup.
"""

from __future__ import annotations

import codecs
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from html.parser import HTMLParser
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from shared.errors import ConfigError, NotPublic, PermanentError
from shared.models import ListedDocument, SourceDocument
from shared.sites import SiteConfig

SUFFIXES = (".html", ".htm")
# Which element holds the content, best first. Several may match one tag (`<div class="body" role="main">`).
MAIN_KINDS = ("main", "role-main", "div-body", "body")
_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([\w.:-]+)""", re.IGNORECASE)
_SITE_SUFFIX = re.compile(r"\s+[—|]\s+[^—|]*$")  # " — Python 3.11 documentation", " | My Site"


class FilesSource:
    """Reads `site.path`; `site.url`, when set, is the public address of that folder."""

    def __init__(self, site: SiteConfig, max_bytes: int) -> None:
        if site.path is None:
            raise ConfigError([f"site {site.name!r}: kind files needs path"])
        self.site = site
        self.root = site.path.resolve()
        self.max_bytes = max_bytes

    def fetch(self, source_id: str) -> SourceDocument:
        path = self._path(source_id)
        try:
            stat = path.stat()
            if stat.st_size > self.max_bytes:
                raise PermanentError(f"{self.site.name}/{source_id}: {stat.st_size} bytes is over the "
                                     f"{self.max_bytes}-byte cap", stage="fetch")
            raw = path.read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise NotPublic(self.site.name, source_id, "no such file") from None
        except PermissionError:
            raise PermanentError(f"{self.site.name}/{source_id}: not readable", stage="fetch") from None
        page = _Page.parse(decode(raw))
        title = page.title or page.h1 or PurePosixPath(source_id).stem
        return SourceDocument(
            site=self.site.name, source_id=source_id, url=self._url(source_id, path), title=title,
            html=page.main_html(), language=self.site.language or page.lang,
            modified_at=datetime.fromtimestamp(stat.st_mtime, UTC), audience=self.site.audience)

    def list_documents(self, since: datetime | None = None,
                       types: tuple[str, ...] | None = None) -> Iterator[ListedDocument]:
        """Every HTML file, sorted by id; `types` are globs on the id (`tutorial/*`; `*` also crosses folders)."""
        found = []
        for folder, dirs, files in os.walk(self.root):  # does not follow symlinked folders out of the tree
            dirs.sort()
            for name in files:
                if not name.endswith(SUFFIXES):
                    continue
                path = Path(folder, name)
                source_id = path.relative_to(self.root).as_posix()
                if types and not any(fnmatchcase(source_id, glob) for glob in types):
                    continue
                try:
                    if not path.resolve().is_relative_to(self.root):
                        continue  # a symlink out of the folder: fetch() would refuse it
                    modified = datetime.fromtimestamp(path.stat().st_mtime, UTC)
                except OSError:
                    continue  # deleted while walking, or a broken link
                if since is None or modified >= since:
                    found.append(ListedDocument(source_id=source_id, modified_at=modified))
        yield from sorted(found, key=lambda d: d.source_id)

    def _path(self, source_id: str) -> Path:
        """The file for `source_id`, refusing anything that could read outside the folder."""
        parts = PurePosixPath(source_id).parts
        if (not source_id or source_id.startswith(("/", "\\")) or "\\" in source_id or "\0" in source_id
                or ".." in parts or re.match(r"^[A-Za-z]:", source_id)):
            raise PermanentError(f"{self.site.name}: {source_id!r} is not a path inside the folder", stage="fetch")
        if not source_id.lower().endswith(SUFFIXES):
            raise PermanentError(f"{self.site.name}: {source_id!r} is not an HTML file", stage="fetch")
        path = self.root.joinpath(*parts)
        if not path.resolve().is_relative_to(self.root):
            raise PermanentError(f"{self.site.name}: {source_id!r} leads outside the folder", stage="fetch")
        return path

    def _url(self, source_id: str, path: Path) -> str:
        return f"{self.site.url.rstrip('/')}/{quote(source_id)}" if self.site.url else path.as_uri()


def decode(raw: bytes) -> str:
    """Text of an HTML file: its BOM or declared charset if that decodes cleanly, else UTF-8 with replacement."""
    for bom, encoding in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
                          (codecs.BOM_UTF16_BE, "utf-16")):
        if raw.startswith(bom):
            return raw.decode(encoding, errors="replace")
    declared = _CHARSET.search(raw[:4096])
    if declared:
        try:
            return raw.decode(declared.group(1).decode("ascii"))
        except (LookupError, UnicodeDecodeError):
            pass
    return raw.decode("utf-8", errors="replace")


@dataclass
class _Candidate:
    """A main-content element being read: its tag, how many same-named tags are open inside it, where it starts."""

    tag: str
    start: int
    depth: int = 0


class _Page(HTMLParser):
    """One pass over a page: its title, first h1, `lang`, and where each main-content candidate starts and ends."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.text = text
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self.title = self.h1 = self.lang = ""
        self.spans: dict[str, tuple[int, int]] = {}
        self._open: dict[str, _Candidate] = {}
        self._in: str | None = None  # "title" or "h1" while collecting its text
        self._parts: list[str] = []

    @classmethod
    def parse(cls, text: str) -> _Page:
        page = cls(text)
        page.feed(text)
        page.close()
        for kind, open_element in page._open.items():  # never closed: runs to the end
            page.spans.setdefault(kind, (open_element.start, len(text)))
        return page

    def main_html(self) -> str:
        kind = next((k for k in MAIN_KINDS if k in self.spans), None)
        return self.text[slice(*self.spans[kind])].strip() if kind else self.text.strip()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        for candidate in self._open.values():
            if candidate.tag == tag:
                candidate.depth += 1
        kinds = [("main", tag == "main"), ("role-main", found.get("role") == "main"),
                 ("div-body", tag == "div" and "body" in (found.get("class") or "").split()), ("body", tag == "body")]
        line, col = self.getpos()
        start = self.line_starts[line - 1] + col + len(self.get_starttag_text() or "")
        for kind, match in kinds:
            if match and kind not in self.spans and kind not in self._open:
                self._open[kind] = _Candidate(tag, start)
        if tag == "html":
            self.lang = found.get("lang") or ""
        if tag in ("title", "h1") and self._in is None and not getattr(self, tag):
            self._in, self._parts = tag, []

    def handle_endtag(self, tag: str) -> None:
        line, col = self.getpos()
        for kind, candidate in list(self._open.items()):
            if candidate.tag != tag:
                continue
            if candidate.depth == 0:
                self.spans[kind] = (candidate.start, self.line_starts[line - 1] + col)
                del self._open[kind]
            else:
                candidate.depth -= 1
        if tag == self._in:
            text = " ".join("".join(self._parts).replace("¶", "").split())
            if tag == "title":
                text = _SITE_SUFFIX.sub("", text) or text
            setattr(self, tag, text)
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in:
            self._parts.append(data)
