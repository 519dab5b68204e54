"""Table tests for `clean`: ugly real-world HTML in, sections with the right headings, anchors and text out."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from services.embedder.clean import clean, clean_title
from shared.models import Section

WORDPRESS_POST = """<!-- wp:paragraph -->
<p>Welcome to our caf&eacute;&nbsp;guide. It&#8217;s free.</p>
<!-- /wp:paragraph -->

<!-- wp:heading {"level":2} -->
<h2 class="wp-block-heading" id="opening-hours">Opening hours</h2>
<!-- /wp:heading -->

<!-- wp:paragraph -->
<p>We open at 9&nbsp;am.</p>
<!-- /wp:paragraph -->
[caption id="attachment_12" align="alignnone" width="300"]<img src="shop.jpg" alt="Our shop" width="300"
 class="size-medium wp-image-12" /> The shop front in spring[/caption]

[gallery ids="1,2,3" columns="3"]

[embed]https://www.youtube.com/watch?v=dQw4w9WgXcQ[/embed]
<!-- wp:heading {"level":3} -->
<h3 class="wp-block-heading">Holidays</h3>
<!-- /wp:heading -->
<p>Closed on [holiday_list year="2024"] public holidays.</p>
<p>[su_note note_color="#ffd"]Bring cash.[/su_note] See [1] and [sic].</p>
<!-- wp:more --><!--more--><!-- /wp:more -->
<!-- wp:code --><pre class="wp-block-code"><code>[x for x in items if x]</code></pre><!-- /wp:code -->"""

SPHINX_PAGE = """<div class="body" role="main">
  <section id="installing">
<span id="install"></span><h1>Installing<a class="headerlink" href="#installing"
 title="Permalink to this heading">¶</a></h1>
<p>Use <code class="docutils literal notranslate"><span class="pre">pip</span></code>.</p>
<section id="from-source">
<h2>From source<a class="headerlink" href="#from-source" title="Permalink to this heading">¶</a></h2>
<p>Clone the repository, then:</p>
<div class="highlight-console notranslate"><div class="highlight"><pre><span></span><span class="gp">$ </span>pip<span
 class="w"> </span>install<span class="w"> </span>-e<span class="w"> </span>.
</pre></div></div>
</section>
</section>
</div>"""

WORD_PASTE = """<html xmlns:o="urn:schemas-microsoft-com:office:office"><head>
<meta name=Generator content="Microsoft Word 15"><style><!-- p.MsoNormal {mso-style-parent:""; margin:0cm;} --></style>
<!--[if gte mso 9]><xml><o:OfficeDocumentSettings><o:AllowPNG/></o:OfficeDocumentSettings></xml><![endif]--></head>
<body lang=EN-GB style='tab-interval:36.0pt'><div class=WordSection1>
<p class=MsoNormal><b><span style='font-size:14.0pt;mso-bidi-font-family:Calibri'>Quarterly report<o:p></o:p>
</span></b></p>
<p class=MsoNormal><span style='mso-fareast-font-family:"Times New Roman"'>Revenue grew by 12&nbsp;% in Q3.<o:p>&nbsp;
</o:p></span></p>
<p class=MsoListParagraphCxSpFirst style='text-indent:-18.0pt;mso-list:l0 level1 lfo1'><![if !supportLists]><span
 style='font-family:Symbol'>·<span style='font:7.0pt "Times New Roman"'>&nbsp;&nbsp;&nbsp;&nbsp; </span></span>
<![endif]>Costs fell.<o:p></o:p></p>
<p class=MsoNormal><o:p>&nbsp;</o:p></p>
</div></body></html>"""

SITE_CHROME = """<header class="site-header"><a href="/">Acme</a><nav><ul><li><a href="/">Home</a></li>
<li>Blog</li></ul></nav></header>
<div role="navigation">Breadcrumbs: Home › Blog</div>
<main><article><header class="entry-header"><h1>Post title</h1></header><p>Body text.</p>
<footer class="entry-footer">Posted in News</footer></article>
<blockquote><p>Quoted.</p><footer>Ada Lovelace</footer></blockquote></main>
<aside id="secondary" class="widget-area" role="complementary"><h2>Recent posts</h2><ul><li>Other post</li></ul>
</aside>
<footer id="colophon">© 2024 Acme · Privacy</footer>
<form action="/search"><label>Search site</label><input name="q"><button>Go</button></form>"""

SCRIPTS = """<p>Before</p><script>document.write("SCRIPT_BODY </p><h2>Fake</h2>")</script>
<style>.x { color: red } /* STYLE_BODY */</style><noscript>NOSCRIPT_BODY</noscript>
<template><p>TEMPLATE_BODY</p></template><svg><text>SVG_BODY</text></svg><iframe src="/x">IFRAME_BODY</iframe>
<div hidden>HIDDEN_BODY</div><div style="display: none">INVISIBLE_BODY</div><p>After</p>"""


def paths_and_anchors(sections: list[Section]) -> list[tuple[tuple[str, ...], str | None]]:
    return [(s.heading_path, s.anchor) for s in sections]


@pytest.mark.parametrize(
    ("html", "title", "expected"),
    [
        pytest.param(WORDPRESS_POST, "Café guide", [((), None), (("Opening hours",), "opening-hours"),
                                                    (("Opening hours", "Holidays"), None)],
                     id="wordpress: heading id, and no anchor for a heading without one"),
        pytest.param(SPHINX_PAGE, "Installing — Acme 1.0 documentation",
                     [((), "installing"), (("From source",), "from-source")],
                     id="sphinx: the section id, and the h1 that repeats the title is no heading"),
        pytest.param(SPHINX_PAGE, "Acme manual", [(("Installing",), "installing"),
                                                  (("Installing", "From source"), "from-source")],
                     id="sphinx: an h1 that is not the title stays in the path"),
        pytest.param("<h2><a id='legacy'></a>Legacy</h2><p>x</p>", "T", [(("Legacy",), "legacy")],
                     id="an <a id> inside the heading"),
        pytest.param("<h2><a name='named'>Named</a></h2><p>x</p>", "T", [(("Named",), "named")],
                     id="an <a name> inside the heading"),
        pytest.param("<h2 id='own'><a id='inner'></a>Own</h2><p>x</p>", "T", [(("Own",), "own")],
                     id="the heading's own id wins"),
        pytest.param("<a id='before'></a><h2>Marker</h2><p>x</p>", "T", [(("Marker",), "before")],
                     id="an empty anchor right before the heading"),
        pytest.param("<div class='section' id='old-sphinx'><h2>Old</h2><p>x</p></div>", "T",
                     [(("Old",), "old-sphinx")], id="old sphinx: div.section with an id"),
        pytest.param("<h1>A</h1><p>a</p><h3>C</h3><p>c</p><h2>B</h2><p>b</p><h1>D</h1><p>d</p>", "T",
                     [(("A",), None), (("A", "C"), None), (("A", "B"), None), (("D",), None)],
                     id="heading paths nest by level and pop back up"),
        pytest.param("<p>a</p><h2><img src='icon.png'></h2><p>b</p>", "T", [((), None)],
                     id="a heading with no text does not split"),
        pytest.param("<h2 id='empty'>Empty</h2><h2 id='full'>Full</h2><p>x</p>", "T", [(("Full",), "full")],
                     id="a section with no text is dropped"),
    ],
)
def test_clean_splits_at_headings_with_their_anchors(
    html: str, title: str, expected: list[tuple[tuple[str, ...], str | None]]
) -> None:
    assert paths_and_anchors(clean(html, title)) == expected


@pytest.mark.parametrize(
    ("html", "present", "absent"),
    [
        pytest.param(WORDPRESS_POST,
                     ["café guide. It’s free.", "We open at 9 am.", "The shop front in spring",
                      "Closed on public holidays.", "Bring cash. See [1] and [sic].", "[x for x in items if x]"],
                     ["wp:", "caption", "gallery", "youtube", "holiday_list", "su_note", "more", "&"],
                     id="wordpress: gutenberg comments and shortcodes go, caption text and code stay"),
        pytest.param(SPHINX_PAGE, ["Use `pip`.", "pip install -e ."], ["¶", "Permalink", "headerlink"],
                     id="sphinx: no headerlink pilcrows"),
        pytest.param(WORD_PASTE, ["Quarterly report", "Revenue grew by 12 % in Q3.", "Costs fell."],
                     ["mso", "Generator", "AllowPNG", "o:p", "\xa0", "supportLists", "MsoNormal"],
                     id="word paste: office junk and styles go"),
        pytest.param(SITE_CHROME, ["Body text.", "Quoted.", "Ada Lovelace"],
                     ["Acme", "Home", "Breadcrumbs", "Posted in", "Recent posts", "Other post", "Search site",
                      "Privacy"], id="site chrome: nav, banner, footers, sidebar and forms go"),
        pytest.param(SCRIPTS, ["Before", "After"], ["_BODY", "Fake", "color"],
                     id="scripts, styles, templates, svg, iframes and hidden elements go"),
        pytest.param("<p>Tom&#8217;s &ldquo;quote&rdquo; &lt;b&gt;not bold&lt;/b&gt; 5&nbsp;&times;&nbsp;3 &#x1F600;",
                     ["Tom’s “quote” <b>not bold</b> 5 × 3 😀"], ["&", "\xa0"],
                     id="entities decode once; escaped markup stays text"),
        pytest.param("<p>a&nbsp;&nbsp;&nbsp;b\u200bc&#8203;d \u00a0</p><p>&nbsp;</p><p>e\ufefff\u00adg",
                     ["a bcd\n\nefg"], ["\xa0", "\u200b", "\ufeff", "\u00ad"],
                     id="non-breaking spaces and zero-width characters"),
        pytest.param("<p>line one<br><br><br><br>line two<br/>line three   </p>", ["line one\n\nline two\nline three"],
                     ["\n\n\n", "  \n", "three "], id="br soup: one blank line at most, no trailing spaces"),
        pytest.param("<p dir='rtl'>זהו טקסט בעברית 🎉</p><p>مرحبا بالعالم</p><p>👨\u200d👩\u200d👧 family</p>",
                     ["זהו טקסט בעברית 🎉", "مرحبا بالعالم", "👨\u200d👩\u200d👧 family"], [],
                     id="emoji and RTL text pass through, family emoji keep their joiners"),
        pytest.param("<p>Cafe\u0301</p>", ["Caf\u00e9"], ["\u0301"], id="unicode is NFC-normalised"),
        pytest.param("<div><p>First<p>Second<ul><li>one<li>two</ul></div></div></span></p><p>tail",
                     ["First\n\nSecond", "* one\n", "* two", "tail"], ["<", "</"],
                     id="unclosed paragraphs and list items, stray end tags"),
        pytest.param("<table><tr><td><table><tr><td>inner a</td><td>inner b</td></tr></table></td><td>outer</td>"
                     "</tr><tr><td>x<td>y</table>", ["inner a", "inner b", "outer", "x| y"], ["<"],
                     id="nested tables keep every cell"),
        pytest.param("<p>Example:</p><pre>def f():\n    return 1\n</pre><ol><li>first</li><li>second</li></ol>",
                     ["    def f():\n        return 1", "1. first\n", "2. second"], ["\\."],
                     id="code keeps its indentation; lists stay lists; no markdown escapes"),
        pytest.param("<form id='aspnetForm'><h2 id='a'>Page</h2><p>Content.</p><input type='hidden' value='VS'></form>",
                     ["Content."], ["VS"], id="a form wrapping the whole page is kept, its controls are not"),
        pytest.param("<p>kept</p><!-- wp:paragraph <p>not kept</p>", ["kept"], ["not kept", "wp:"],
                     id="an unclosed comment runs to the end"),
    ],
)
def test_clean_keeps_content_and_drops_junk(html: str, present: list[str], absent: list[str]) -> None:
    text = "\n\n".join(s.text for s in clean(html, "Some title"))
    for expected in present:
        assert expected in text
    for unwanted in absent:
        assert unwanted not in text
    assert all(line == line.rstrip() for line in text.splitlines())


@pytest.mark.parametrize(
    "html",
    ["", "   \n\t", "<p>&nbsp;</p><p>\u200b</p>", "<script>only()</script><style>p{}</style>",
     "<nav><a href='/'>Home</a></nav>", "<h1>Just a heading</h1>", "<!-- wp:paragraph --><!-- /wp:paragraph -->"],
)
def test_clean_returns_no_sections_for_documents_without_text(html: str) -> None:
    assert clean(html, "Title") == []


def test_clean_puts_text_before_the_first_heading_in_a_section_without_path_or_anchor() -> None:
    sections = clean("<p>Intro.</p><h2 id='x'>X</h2><p>Body.</p>", "Title")
    assert sections == [Section((), None, "Intro."), Section(("X",), "x", "Body.")]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Caf&eacute;&nbsp;&amp; more", "Café & more"),
        ("It&#8217;s  a\n title ", "It’s a title"),
        ("\u200bZero\u200bwidth", "Zerowidth"),
        ("", ""),
    ],
)
def test_clean_title_decodes_entities_and_whitespace(raw: str, expected: str) -> None:
    assert clean_title(raw) == expected


def test_clean_survives_a_one_megabyte_document_of_ugly_markup() -> None:
    block = (
        "<h2 id='s{i}'>Section {i}</h2><p>Para&nbsp;{i} with <b>bold<i>nested</b> tags<br><br>and text"
        "<table><tr><td>a<td>b</table><script>var x = '</div>SCRIPT';</script><o:p></o:p></div>"
        "<nav><li>Menu {i}</nav>[caption id='c{i}']Caption {i}[/caption]<!-- wp:paragraph -->\n"
    )
    html = "".join(block.format(i=i) for i in range(5000))
    assert len(html) > 1_000_000
    started = time.perf_counter()
    sections = clean(html, "Big")
    print(f"clean of {len(html):,} chars: {time.perf_counter() - started:.2f}s, {len(sections)} sections")
    assert [s.anchor for s in sections] == [f"s{i}" for i in range(5000)]
    assert "Caption 4999" in sections[-1].text
    assert not any("SCRIPT" in s.text or "Menu" in s.text for s in sections)


CONTROLFLOW = Path("/usr/share/doc/python3.11/html/tutorial/controlflow.html")


@pytest.mark.skipif(not CONTROLFLOW.is_file(), reason="python3.11-doc is not installed")
def test_clean_reads_the_python_tutorial_page_with_its_sphinx_anchors() -> None:
    sections = clean(CONTROLFLOW.read_text(encoding="utf-8"), "4. More Control Flow Tools")
    by_anchor = {s.anchor: s for s in sections}
    assert sections[0].heading_path == ()
    assert sections[0].anchor == "more-control-flow-tools"
    assert by_anchor["if-statements"].heading_path == ("4.1. if Statements",)
    assert by_anchor["recap"].heading_path == ("4.8. More on Defining Functions", "4.8.3. Special parameters",
                                              "4.8.3.5. Recap")
    assert by_anchor["intermezzo-coding-style"].heading_path == ("4.9. Intermezzo: Coding Style",)
    assert ">>> for i in range(5):" in by_anchor["the-range-function"].text
    text = "\n".join(s.text for s in sections)
    for chrome in ("¶", "Table of Contents", "Previous topic", "Report a Bug", "Quick search", "Navigation"):
        assert chrome not in text
