"""Record real Wagtail API v2 answers into `tests/fixtures/wagtail/`, for `tests/fakes/cms_replay.py` to replay.

Why recordings of a real Wagtail rather than hand-written JSON: the shapes that matter are Wagtail's own —
StreamField blocks with uuids, rich text in its stored form (`<a linktype="page" id="4">`, `<embed …/>`), 404s
for unpublished and deleted pages, a 400 for `fields=last_published_at` on the generic listing, the exact
400 for a too-large `limit`. The site's address is fixed (`HOME_URL`), so `html_url`s do not depend on the port.

What is recorded (ids in `ids.json`): an article with headings, a list, code, raw HTML, an image embed, a
link to a live page and one to a deleted page; a NotePage (rich text, no StreamField); the link targets; an
unpublished and a deleted page (404); the article listing two at a time; the requests `WagtailSource` makes to
list every page; and in `limit-max-20/` the same site with Wagtail's default `WAGTAILAPI_LIMIT_MAX` of 20.

Run: .venv/bin/python scripts/record_wagtail_fixtures.py [--out tests/fixtures/wagtail]
(needs the Wagtail venv: `$CMSRAG_WAGTAIL_PYTHON` or `.cmsrag/wagtail-venv`; takes ~20 s)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.cms.wagtail import WagtailServer  # noqa: E402 - needs the project root on sys.path

HOME_URL = "http://wagtail.example.test"
KEPT_HEADERS = ("Content-Type", "Allow", "Vary")


def article(heading: str, text: str) -> list[dict[str, Any]]:
    return [{"type": "heading", "value": {"text": heading, "anchor": "", "level": "h2"}},
            {"type": "paragraph", "value": f"<p>{text}</p>"}]


def create_pages(site: WagtailServer) -> dict[str, int]:
    """The recorded site's content; each `call` is one Django process, later pages need earlier ids."""
    target, gone = site.call(
        ("create_article", {"title": "Virtual Environments and Packages", "intro": "Isolate each project.",
                            "body": article("Introduction", "A virtual environment is a self-contained "
                                            "directory tree with its own Python installation.")}),
        ("create_article", {"title": "Old Tutorial", "body": article("Outdated", "This page will be deleted.")}))
    body = [
        {"type": "heading", "value": {"text": "Why Python?", "anchor": "", "level": "h2"}},
        {"type": "paragraph", "value": '<p>Python is an <b>easy to learn</b>, powerful language. Before installing '
                                       f'packages, read about <a linktype="page" id="{target}">virtual environments'
                                       '</a> and the <a href="https://docs.python.org/3/">official docs</a>.</p>'},
        {"type": "paragraph", "value": "<ul><li>Readable syntax</li><li>Batteries included</li>"
                                       "<li>A large ecosystem</li></ul>"},
        {"type": "heading", "value": {"text": "Installing packages", "anchor": "install", "level": "h3"}},
        {"type": "paragraph", "value": '<p>Use pip inside a virtual environment.</p><embed alt="pip in a terminal" '
                                       'embedtype="image" format="fullwidth" id="1"/>'},
        {"type": "code", "value": {"language": "shell",
                                   "code": "python -m venv .venv\n. .venv/bin/activate\npip install requests"}},
        {"type": "paragraph", "value": f'<p>The <a linktype="page" id="{gone}">old tutorial</a> is gone.</p>'},
        {"type": "raw", "value": "<table><tr><th>Version</th><th>Status</th></tr>"
                                 "<tr><td>3.11</td><td>security fixes</td></tr></table>"},
    ]
    main, note, *_, hidden = site.call(
        ("create_article", {"title": "Getting Started with Python", "intro": "Your first steps.", "body": body}),
        ("create_note", {"title": "Release Notes", "text": f'<h2>Python 3.11</h2><p>Faster CPython; see <a '
                         f'linktype="page" id="{target}">virtual environments</a>.</p>'}),
        ("create_article", {"title": "Data Structures", "body": article("Lists", "Lists are mutable sequences.")}),
        ("create_article", {"title": "Modules", "body": article("Packages", "Packages structure module names.")}),
        ("create_article", {"title": "Errors and Exceptions", "body": article("Syntax errors", "Parsing fails.")}),
        ("create_article", {"title": "Classes", "body": article("Scopes", "Namespaces map names to objects.")}))
    site.call(("unpublish", {"page_id": hidden}), ("delete", {"page_id": gone}))
    return {"article": main, "note": note, "link_target": target, "deleted": gone, "unpublished": hidden}


def record(site: WagtailServer, out: Path, keys: list[str]) -> None:
    """GET each "path?query" from the running site; write the bodies and `index.json`."""
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.json"):
        old.unlink()
    index = {}
    for key in keys:
        r = requests.get(site.base_url + key, timeout=30)
        name = re.sub(r"[^A-Za-z0-9]+", "-", key.replace("*", "all")).strip("-") + ".json"
        (out / name).write_bytes(r.content)
        index[key] = {"status": r.status_code, "body_file": name,
                      "headers": {h: r.headers[h] for h in KEPT_HEADERS if h in r.headers}}
        print(f"{r.status_code} {key}")
    (out / "index.json").write_text(json.dumps(index, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "fixtures" / "wagtail")
    out: Path = parser.parse_args().out
    with tempfile.TemporaryDirectory(prefix="wagtail-record-") as tmp:
        with WagtailServer(Path(tmp), home_url=HOME_URL).start(fresh=True) as site:
            ids = create_pages(site)
            articles = "/api/v2/pages/?type=app.ArticlePage&fields=last_published_at&order=id"
            keys = [f"/api/v2/pages/{ids[k]}/?fields=*" for k in ("article", "note", "unpublished", "deleted")]
            keys += [f"/api/v2/pages/{ids[k]}/" for k in ("link_target", "deleted")]
            keys += [f"{articles}&limit=2&offset={n}" for n in (0, 2, 4)]
            # What WagtailSource.list_documents() asks for when given no types (limit 100).
            keys += ["/api/v2/pages/?fields=last_published_at&order=id&limit=100&offset=0",
                     "/api/v2/pages/?order=id&limit=100&offset=0", f"{articles}&limit=100&offset=0",
                     "/api/v2/pages/?type=app.NotePage&fields=last_published_at&order=id&limit=100&offset=0"]
            record(site, out, keys)
        # The same content served with Wagtail's default page-size cap.
        with WagtailServer(Path(tmp), home_url=HOME_URL, limit_max=20) as site:
            record(site, out / "limit-max-20", [f"{articles}&limit=100&offset=0", f"{articles}&limit=20&offset=0"])
    (out / "ids.json").write_text(json.dumps(ids, indent=2) + "\n")
    print(f"recorded into {out}: {ids}")


if __name__ == "__main__":
    main()
