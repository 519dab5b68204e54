"""FilesSource on small HTML files written for each test (and one real page of python3.11-doc when installed)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shared.errors import NotPublic, PermanentError
from shared.sites import SiteConfig
from shared.sources.files import FilesSource, decode

PYTHON_DOCS = Path("/usr/share/doc/python3.11/html")
SPHINX_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8" />
<title>4. More Control Flow Tools &#8212; Python 3.11.2 documentation</title></head>
<body><div class="related" role="navigation"><a href="../index.html">Navigation</a></div>
<div class="document"><div class="bodywrapper">
<div class="body" role="main">
<section id="more-control-flow-tools"><h1>4. More Control Flow Tools<a class="headerlink" href="#x">¶</a></h1>
<div class="highlight"><pre>if x &lt; 0:</pre></div>
<p>Besides <code>while</code>.</p></section>
</div></div></div>
<div class="sphinxsidebar" role="navigation">Table of contents</div>
<div class="footer">© Copyright</div>
</body></html>
"""


def make_source(root: Path, *, url: str | None = "https://docs.example/3.11", max_bytes: int = 100_000,
                language: str | None = None) -> FilesSource:
    return FilesSource(SiteConfig(name="docs", kind="files", path=root, url=url, language=language), max_bytes)


def write(root: Path, rel: str, content: str | bytes) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


def test_a_sphinx_page_gives_its_title_without_the_site_suffix_and_only_its_main_content(tmp_path: Path) -> None:
    path = write(tmp_path, "tutorial/controlflow.html", SPHINX_PAGE)
    os.utime(path, (1_700_000_000, 1_700_000_000))
    doc = make_source(tmp_path).fetch("tutorial/controlflow.html")
    assert doc.title == "4. More Control Flow Tools"
    assert doc.html.startswith('<section id="more-control-flow-tools">') and doc.html.endswith("</section>")
    assert "<pre>if x &lt; 0:</pre>" in doc.html  # the inner HTML as written, entities untouched
    assert "Navigation" not in doc.html and "Table of contents" not in doc.html and "Copyright" not in doc.html
    assert (doc.source_id, doc.url, doc.language) == ("tutorial/controlflow.html",
                                                      "https://docs.example/3.11/tutorial/controlflow.html", "en")
    assert doc.modified_at == datetime.fromtimestamp(1_700_000_000, UTC)


@pytest.mark.parametrize(("page", "main"), [
    ("<body><nav>menu</nav><main><p>a</p><main>nested</main><p>b</p></main><footer>f</footer></body>",
     "<p>a</p><main>nested</main><p>b</p>"),
    ('<body><nav>menu</nav><div role="main"><div><p>In</p></div><p>Out</p></div><div>after</div></body>',
     "<div><p>In</p></div><p>Out</p>"),
    ('<body><div class="bodywrapper">x<div class="body"><p>Text</p></div></div></body>', "<p>Text</p>"),
    ('<body><div role="main"><p>Role</p></div><main><p>Main wins</p></main></body>', "<p>Main wins</p>"),
    ("<html><body><p>Just a body</p></body></html>", "<p>Just a body</p>"),
    ("<p>A fragment, no body at all</p>", "<p>A fragment, no body at all</p>"),
    ("<body><main><p>Never closed</p>", "<p>Never closed</p>"),
])
def test_the_main_content_is_the_best_candidate_element(tmp_path: Path, page: str, main: str) -> None:
    write(tmp_path, "page.html", page)
    assert make_source(tmp_path).fetch("page.html").html == main


@pytest.mark.parametrize(("page", "title"), [
    ("<title>Install | My Site</title><h1>Other</h1>", "Install"),
    ("<title>Plain title</title>", "Plain title"),
    ("<title> — Only a suffix</title>", "— Only a suffix"),  # nothing left to strip to: keep it
    ("<body><h1>Heading <em>one</em>¶</h1><h1>Second</h1></body>", "Heading one"),
    ("<body><p>No title, no heading</p></body>", "notes"),  # the file name
])
def test_the_title_comes_from_title_then_the_first_h1_then_the_file_name(tmp_path: Path, page: str,
                                                                          title: str) -> None:
    write(tmp_path, "notes.html", page)
    assert make_source(tmp_path).fetch("notes.html").title == title


def test_without_a_site_url_the_url_is_the_files_own(tmp_path: Path) -> None:
    path = write(tmp_path, "a b.html", "<p>x</p>")
    assert make_source(tmp_path, url=None).fetch("a b.html").url == path.as_uri()
    assert make_source(tmp_path).fetch("a b.html").url == "https://docs.example/3.11/a%20b.html"


def test_the_sites_language_wins_over_the_pages(tmp_path: Path) -> None:
    write(tmp_path, "p.html", '<html lang="en"><body>x</body></html>')
    assert make_source(tmp_path, language="de").fetch("p.html").language == "de"


@pytest.mark.parametrize("source_id", ["../secret.html", "a/../../secret.html", "/etc/passwd.html", "\\x.html",
                                       "C:/x.html", "", "page.txt", "a\0b.html"])
def test_ids_that_could_escape_the_folder_or_are_not_html_are_rejected(tmp_path: Path, source_id: str) -> None:
    (tmp_path / "docs").mkdir()
    write(tmp_path, "secret.html", "<p>secret</p>")
    with pytest.raises(PermanentError):
        make_source(tmp_path / "docs").fetch(source_id)


def test_a_symlink_out_of_the_folder_is_rejected_and_not_listed(tmp_path: Path) -> None:
    write(tmp_path, "outside.html", "<p>secret</p>")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "link.html").symlink_to(tmp_path / "outside.html")
    with pytest.raises(PermanentError, match="outside"):
        make_source(tmp_path / "docs").fetch("link.html")
    assert list(make_source(tmp_path / "docs").list_documents()) == []


@pytest.mark.parametrize("source_id", ["missing.html", "folder.html", "file.html/inner.html"])
def test_a_missing_file_is_not_public(tmp_path: Path, source_id: str) -> None:
    (tmp_path / "folder.html").mkdir()
    write(tmp_path, "file.html", "<p>x</p>")
    with pytest.raises(NotPublic, match="no such file"):
        make_source(tmp_path).fetch(source_id)


def test_bytes_that_are_not_utf8_are_replaced_not_fatal(tmp_path: Path) -> None:
    write(tmp_path, "broken.html", b"<title>Caf\xe9</title><body><p>na\xefve \xff</p></body>")
    doc = make_source(tmp_path).fetch("broken.html")
    assert (doc.title, doc.html) == ("Caf\ufffd", "<p>na\ufffdve \ufffd</p>")


@pytest.mark.parametrize(("raw", "text"), [
    (b'<meta charset="iso-8859-1"><p>caf\xe9</p>', '<meta charset="iso-8859-1"><p>café</p>'),
    (b'<meta http-equiv="Content-Type" content="text/html; charset=windows-1252"><p>\x93q\x94</p>',
     '<meta http-equiv="Content-Type" content="text/html; charset=windows-1252"><p>“q”</p>'),
    (b'<meta charset="utf-8"><p>caf\xc3\xa9 \xe9</p>', '<meta charset="utf-8"><p>café \ufffd</p>'),
    (b'<meta charset="no-such-codec"><p>caf\xc3\xa9</p>', '<meta charset="no-such-codec"><p>café</p>'),
    (b"\xef\xbb\xbf<p>bom</p>", "<p>bom</p>"),
])
def test_the_declared_charset_is_tried_first(raw: bytes, text: str) -> None:
    assert decode(raw) == text


def test_a_file_over_the_size_cap_is_rejected(tmp_path: Path) -> None:
    write(tmp_path, "big.html", "<p>" + "x" * 200 + "</p>")
    with pytest.raises(PermanentError, match="cap"):
        make_source(tmp_path, max_bytes=100).fetch("big.html")
    assert make_source(tmp_path, max_bytes=1000).fetch("big.html").html.startswith("<p>x")


def test_listing_is_sorted_html_only_and_filtered_by_globs_and_time(tmp_path: Path) -> None:
    for rel in ("b.html", "a.htm", "tutorial/z.html", "tutorial/deep/y.html", "library/os.html", "_static/x.css",
                "notes.txt"):
        write(tmp_path, rel, "<p>x</p>")
    os.utime(tmp_path / "b.html", (1_000_000_000, 1_000_000_000))
    source = make_source(tmp_path)
    assert [d.source_id for d in source.list_documents()] == [
        "a.htm", "b.html", "library/os.html", "tutorial/deep/y.html", "tutorial/z.html"]
    assert [d.source_id for d in source.list_documents(types=("tutorial/*", "b.html"))] == [
        "b.html", "tutorial/deep/y.html", "tutorial/z.html"]
    recent = [d.source_id for d in source.list_documents(since=datetime(2020, 1, 1, tzinfo=UTC))]
    assert "b.html" not in recent and len(recent) == 4
    assert all(d.modified_at and d.modified_at.tzinfo == UTC for d in source.list_documents())


@pytest.mark.skipif(not PYTHON_DOCS.is_dir(), reason="Debian's python3.11-doc is not installed")
def test_a_real_python_docs_page_is_read_without_its_navigation() -> None:
    doc = make_source(PYTHON_DOCS, max_bytes=2_000_000).fetch("tutorial/controlflow.html")
    assert doc.title == "4. More Control Flow Tools"
    assert doc.html.startswith('<section id="more-control-flow-tools">')
    assert "sphinxsidebar" not in doc.html and "Navigation" not in doc.html
