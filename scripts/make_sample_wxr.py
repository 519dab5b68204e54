"""Build `samples/python-tutorial.wxr`: the Python 3.11 tutorial as WordPress pages, exported by WordPress.

Why a real WordPress rather than writing XML by hand: the WXR source must read what WordPress actually
exports (its CDATA splitting, GMT dates, empty passwords, statuses), and only WordPress's own `export_wp()`
produces that. The content is Debian's python3.11-doc, so the demo corpus matches the evaluation questions.

Pages: one per tutorial chapter (slug = file stem, children of a "tutorial" page in toctree order, so links
read /tutorial/<stem>/ like the docs' tutorial/<stem>.html). Posts: three short blog posts. Non-public
items (a draft, a private and a password-protected post) carry CANARY so a leak is easy to search for.
Dates are fixed and the site address is stable, so a rebuild gives the same file apart from export times.

Run: .venv/bin/python scripts/make_sample_wxr.py [--out samples/python-tutorial.wxr]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.cms.wordpress import WordPressServer, php_str  # noqa: E402 - needs the project root on sys.path

TUTORIAL = Path("/usr/share/doc/python3.11/html/tutorial")
DOCS = "https://docs.python.org/3.11/"
HOME_URL = "https://python-tutorial.example"
CANARY = "CANARY-PRIVATE-7f3a"
MAX_BYTES = 2_000_000


class _MainBody(HTMLParser):
    """Finds the raw inner HTML of Sphinx's `<div class="body" role="main">` and the text of its first h1."""

    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=True)
        self.source = source
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", source)]
        self.start = self.end = -1
        self.depth = 0
        self.h1: list[str] | None = None
        self.title = ""
        self.skip = 0

    def _offset(self) -> int:
        line, col = self.getpos()
        return self.line_starts[line - 1] + col

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "div" and self.start < 0 and "body" in (a.get("class") or "").split() and a.get("role") == "main":
            self.start = self._offset() + len(self.get_starttag_text() or "")
            self.depth = 1
        elif tag == "div" and self.depth:
            self.depth += 1
        elif tag == "h1" and self.depth and not self.title:
            self.h1 = []
        elif tag == "a" and self.h1 is not None and a.get("class") == "headerlink":
            self.skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "div" and self.depth:
            self.depth -= 1
            if not self.depth:
                self.end = self._offset()
        elif tag == "h1" and self.h1 is not None:
            self.title, self.h1 = " ".join("".join(self.h1).split()), None
        elif tag == "a" and self.skip:
            self.skip -= 1

    def handle_data(self, data: str) -> None:
        if self.h1 is not None and not self.skip:
            self.h1.append(data)


def _rewrite_href(href: str, stems: set[str]) -> str:
    """Tutorial-internal links point at the WordPress pages, the rest of the docs at docs.python.org."""
    if href.startswith(("#", "http:", "https:", "mailto:")):
        return href
    path, _, frag = href.partition("#")
    frag = f"#{frag}" if frag else ""
    stem = path.removesuffix(".html")
    if stem in stems:
        return f"{HOME_URL}/tutorial/{'' if stem == 'index' else stem + '/'}{frag}"
    return DOCS + (path[3:] if path.startswith("../") else "tutorial/" + path) + frag


def read_chapter(path: Path, stems: set[str]) -> dict[str, str]:
    """Title and cleaned body HTML of one Sphinx page; heading and section ids are kept for deep links."""
    parser = _MainBody(path.read_text(encoding="utf-8"))
    parser.feed(parser.source)
    if parser.start < 0 or parser.end < 0 or not parser.title:
        raise SystemExit(f"{path}: no <div class='body' role='main'> with an h1")
    body = parser.source[parser.start:parser.end]
    body = re.sub(r'<a class="headerlink"[^>]*>.*?</a>', "", body, flags=re.S)  # the ¶ permalink marks
    body = re.sub(r'<div class="clearer"></div>', "", body)
    body = re.sub(r'href="([^"]*)"', lambda m: f'href="{_rewrite_href(m[1], stems)}"', body)
    return {"title": parser.title, "html": body.strip()}


def tutorial_pages() -> list[dict[str, str]]:
    """index.html first, then the chapters in the order of its table of contents."""
    stems = {p.stem for p in TUTORIAL.glob("*.html")}
    toc = re.findall(r'<li class="toctree-l1"><a class="reference internal" href="([a-z0-9_]+)\.html">',
                     (TUTORIAL / "index.html").read_text(encoding="utf-8"))
    order = ["index", *dict.fromkeys(s for s in toc if s in stems)]
    order += sorted(stems - set(order))
    return [{"slug": "tutorial" if s == "index" else s, **read_chapter(TUTORIAL / f"{s}.html", stems)}
            for s in order]


def blog_posts() -> list[dict[str, object]]:
    """Three short published posts and the non-public canaries.

    The first has categories and tags, and ASCII quotes and "&" in its title, which WordPress turns into
    entities (&#8217; &#038;) in what it renders: the sources must decode them.
    """
    t = f"{HOME_URL}/tutorial"
    return [
        {"slug": "first-hour-with-the-tutorial",
         "title": "Python's tutorial: what you'll learn in the first hour & beyond",
         "categories": ["Tutorials", "Python"], "tags": ["beginners", "interpreter", "lists"],
         "html": f'<p>The <a href="{t}/">Python tutorial</a> starts gently.</p>\n'
                 '<h2 id="calculator">Python as a calculator</h2>\n<p>Chapter 3 uses the interpreter as a '
                 'calculator: <code>17 // 3</code> floors, <code>17 % 3</code> gives the remainder.</p>\n'
                 '<h2 id="lists">Lists</h2>\n<p>Lists are mutable; slicing returns a new list, so '
                 '<code>squares[:]</code> is a shallow copy.</p>'},
        {"slug": "comprehensions-explained", "title": "List comprehensions, explained with the tutorial’s examples",
         "categories": ["Tutorials"], "tags": [],
         "html": f'<p>Section 5.1.3 of the <a href="{t}/datastructures/#list-comprehensions">data structures '
                 'chapter</a> shows <code>[x**2 for x in range(10)]</code>.</p>\n<h2 id="nested">Nested '
                 'comprehensions</h2>\n<p>The transpose example reads the <code>for</code> clauses left to '
                 'right.</p>'},
        {"slug": "why-virtual-environments", "title": "Why the tutorial has a chapter on virtual environments",
         "categories": [], "tags": ["venv"],
         "html": f'<p>Different projects need different versions of the same package. The '
                 f'<a href="{t}/venv/">venv chapter</a> creates one environment per project with '
                 '<code>python -m venv tutorial-env</code>.</p>'},
        {"slug": "upcoming-draft", "title": "Draft: notes for the next release", "status": "draft",
         "categories": [], "tags": [], "html": f"<p>Unpublished draft. {CANARY}</p>"},
        {"slug": "team-only-notes", "title": "Team-only notes", "status": "private",
         "categories": [], "tags": [], "html": f"<p>Private to logged-in editors. {CANARY}</p>"},
        {"slug": "members-corner", "title": "Members’ corner", "password": "letmein",
         "categories": [], "tags": [], "html": f"<p>Behind a post password. {CANARY}</p>"},
    ]


POPULATE_PHP = """
$spec = json_decode(file_get_contents(%s), true);
foreach (get_posts(['post_type' => 'any', 'post_status' => 'any', 'numberposts' => -1]) as $p) {
    wp_delete_post($p->ID, true);  // wp_install's "Hello world!", "Sample Page" and privacy-policy draft
}
$ids = ['pages' => [], 'posts' => []];
$parent = 0;
foreach ($spec['pages'] as $i => $p) {
    $date = gmdate('Y-m-d H:i:s', strtotime('2024-01-15 09:00:00 UTC') + 60 * $i);
    $id = wp_insert_post(wp_slash([  // wp_insert_post unslashes: without this, backslashes in code vanish
        'post_type' => 'page', 'post_status' => 'publish', 'post_name' => $p['slug'],
        'post_title' => $p['title'], 'post_content' => "<!-- wp:html -->\\n" . $p['html'] . "\\n<!-- /wp:html -->",
        'post_parent' => $parent, 'menu_order' => $i, 'post_date' => $date, 'post_date_gmt' => $date,
    ]), true);
    if (is_wp_error($id)) { fwrite(STDERR, $id->get_error_message()); exit(1); }
    if ($i === 0) { $parent = $id; }
    $ids['pages'][$p['slug']] = $id;
}
foreach ($spec['posts'] as $i => $p) {
    $date = gmdate('Y-m-d H:i:s', strtotime('2024-02-01 12:00:00 UTC') + 86400 * $i);
    $cats = array_map(fn($c) => wp_create_category($c), $p['categories']);
    $id = wp_insert_post(wp_slash([
        'post_type' => 'post', 'post_status' => $p['status'] ?? 'publish', 'post_name' => $p['slug'],
        'post_title' => $p['title'], 'post_content' => $p['html'], 'post_password' => $p['password'] ?? '',
        'post_category' => $cats, 'tags_input' => $p['tags'], 'post_date' => $date, 'post_date_gmt' => $date,
    ]), true);
    if (is_wp_error($id)) { fwrite(STDERR, $id->get_error_message()); exit(1); }
    $ids['posts'][$p['slug']] = $id;
}
echo json_encode($ids);
"""


def populate(wp: WordPressServer) -> dict[str, dict[str, int]]:
    """Replace the site's content by the tutorial pages and the blog posts; ids by kind and slug."""
    spec = Path(wp.folder) / "content.json"
    spec.write_text(json.dumps({"pages": tutorial_pages(), "posts": blog_posts()}), encoding="utf-8")
    # The admin load of wp-admin/includes for wp_create_category() is cheap compared with a second boot.
    return dict(wp.php_json("require_once ABSPATH . 'wp-admin/includes/taxonomy.php';\n"
                            + POPULATE_PHP % php_str(str(spec))))


def export(wp: WordPressServer, out: Path) -> None:
    """WordPress's own WXR export of everything (what Tools → Export → All content downloads)."""
    wp.php("require_once ABSPATH . 'wp-admin/includes/export.php'; ob_start(); export_wp(['content' => 'all']);"
           f"file_put_contents({php_str(str(out))}, ob_get_clean());")


def summarize(path: Path) -> dict[str, int]:
    """Counts by post type and status, read back from the exported file."""
    ns = {"wp": "http://wordpress.org/export/1.2/"}
    counts: dict[str, int] = {}
    for item in ET.parse(path).getroot().iter("item"):
        key = f"{item.findtext('wp:post_type', '', ns)}/{item.findtext('wp:status', '', ns)}"
        if item.findtext("wp:post_password", "", ns):
            key += "+password"
        counts[key] = counts.get(key, 0) + 1
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "samples" / "python-tutorial.wxr")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="wp-sample-") as tmp, \
            WordPressServer(Path(tmp), home_url=HOME_URL, title="The Python Tutorial") as wp:
        ids = populate(wp)
        export(wp, args.out.resolve())
    size = args.out.stat().st_size
    print(f"wrote {args.out} ({size:,} bytes): {len(ids['pages'])} pages, {len(ids['posts'])} posts")
    print("items by type/status:", json.dumps(summarize(args.out), sort_keys=True))
    if size > MAX_BYTES:
        raise SystemExit(f"{args.out} is over {MAX_BYTES:,} bytes")


if __name__ == "__main__":
    main()
