"""Record real WordPress REST answers into `tests/fixtures/wordpress/` for the replay server.

The content is the same as the sample WXR's (the same `populate()` on a fresh install, so ids and links match
`samples/python-tutorial.wxr`). Each answer is stored byte for byte with the headers a source reads
(Content-Type, X-WP-Total, X-WP-TotalPages, and Location made relative, since the replay runs elsewhere);
`index.json` maps "path?query" to it, in the format `tests/fakes/cms_replay.py` serves. `ids.json` says which
id plays which part, so tests do not hard-code them.

`plain-permalinks/` holds the same site with permalinks off, where `/wp-json/...` is redirected to the home page
and only `?rest_route=` reaches the API.

Run: .venv/bin/python scripts/record_wordpress_fixtures.py [--out tests/fixtures/wordpress]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from make_sample_wxr import HOME_URL, populate  # noqa: E402 - scripts/ is on sys.path when run as a script

from tests.cms.wordpress import WordPressServer  # noqa: E402

KEPT_HEADERS = ("Content-Type", "X-WP-Total", "X-WP-TotalPages", "Location")
PAGE_SIZE = 5  # small pages so a 17-page site needs several listing requests
MODIFIED_AFTER = "2024-02-02T00:00:00Z"  # between the first and the second blog post


class Recorder:
    """GETs paths from the live site (no redirects followed) and writes them into one fixture folder."""

    def __init__(self, wp: WordPressServer, folder: Path, auth: tuple[str, str] | None = None) -> None:
        self.wp, self.folder, self.auth = wp, folder, auth
        self.index: dict[str, dict[str, object]] = {}
        self.files: dict[bytes, str] = {}  # identical bodies (the home page) are stored once
        folder.mkdir(parents=True, exist_ok=True)

    def get(self, key: str, *, auth: bool = False) -> requests.Response:
        # The Host header WordPress expects: otherwise its canonical redirects point at the wrong host.
        r = requests.get(self.wp.base_url + key, auth=self.auth if auth else None, allow_redirects=False,
                         headers={"Host": urlsplit(HOME_URL).netloc}, timeout=30)
        headers = {h: r.headers[h] for h in KEPT_HEADERS if h in r.headers}
        if "Location" in headers:
            loc = urlsplit(headers["Location"])
            headers["Location"] = loc.path + (f"?{loc.query}" if loc.query else "")
        ext = "json" if "json" in r.headers.get("Content-Type", "") else "html"
        name = re.sub(r"[^a-z0-9]+", "-", key.lower()).strip("-") + ("-auth" if auth else "") + f".{ext}"
        if r.content:
            name = self.files.setdefault(r.content, name)
            (self.folder / name).write_bytes(r.content)
        self.index[key] = {"status": r.status_code, "headers": headers, **({"body_file": name} if r.content else {})}
        print(f"{r.status_code} {key}{' (authenticated)' if auth else ''} -> {len(r.content):,} bytes")
        return r

    def listing(self, base: str, extra: str = "", *, auth: bool = False) -> None:
        """Every page of a listing, with the query `WordPressSource.list_documents` sends."""
        status = "publish,private" if auth else "publish"
        page, pages = 1, 1
        while page <= pages:
            r = self.get(f"/wp-json/wp/v2/{base}?per_page={PAGE_SIZE}&page={page}&status={status}"
                         f"&_fields=id,modified_gmt,type&orderby=id&order=asc{extra}", auth=auth)
            pages = int(r.headers.get("X-WP-TotalPages", "1"))
            page += 1

    def save(self, ids: dict[str, object] | None = None) -> None:
        (self.folder / "index.json").write_text(json.dumps(self.index, indent=1) + "\n", encoding="utf-8")
        if ids is not None:
            (self.folder / "ids.json").write_text(json.dumps(ids, indent=1) + "\n", encoding="utf-8")


def record(wp: WordPressServer, out: Path) -> None:
    made = populate(wp)
    pages, posts = made["pages"], made["posts"]
    deleted = int(wp.php("$id = wp_insert_post(['post_title' => 'Short-lived', 'post_status' => 'publish',"
                         " 'post_content' => 'gone soon']); wp_delete_post($id, true); echo $id;"))
    app_password = wp.create_app_password("admin")
    ids = {
        "home_url": HOME_URL, "page_size": PAGE_SIZE, "modified_after": MODIFIED_AFTER,
        "page": pages["appetite"], "post": posts["first-hour-with-the-tutorial"],
        "draft": posts["upcoming-draft"], "private": posts["team-only-notes"],
        "protected": posts["members-corner"], "deleted": deleted,
        "pages": sorted(pages.values()),
        "posts": sorted(v for k, v in posts.items() if k not in ("upcoming-draft", "team-only-notes")),
    }
    rec = Recorder(wp, out, auth=("admin", app_password))
    rec.get(f"/wp-json/wp/v2/pages/{ids['page']}")
    rec.get(f"/wp-json/wp/v2/posts/{ids['post']}")
    rec.get(f"/wp-json/wp/v2/posts/{ids['page']}")  # a page asked for as a post: 404, as for any wrong type
    for part in ("draft", "private", "protected", "deleted"):
        rec.get(f"/wp-json/wp/v2/posts/{ids[part]}")
    rec.get(f"/?rest_route=/wp/v2/posts/{ids['post']}")
    rec.listing("pages")
    rec.listing("posts")
    rec.listing("posts", f"&modified_after={MODIFIED_AFTER}")
    rec.get("/wp-json/wp/v2/users/me?_fields=id", auth=True)  # the source's credentials check
    for part in ("private", "draft"):  # what an editor's application password sees
        rec.get(f"/wp-json/wp/v2/posts/{ids[part]}?context=view", auth=True)
    rec.listing("posts", auth=True)
    rec.save(ids)

    wp.set_permalinks("")
    plain = Recorder(wp, out / "plain-permalinks")
    for part in ("post", "deleted"):
        r = plain.get(f"/wp-json/wp/v2/posts/{ids[part]}")
        if r.is_redirect:
            plain.get(urlsplit(r.headers["Location"]).path)
        plain.get(f"/?rest_route=/wp/v2/posts/{ids[part]}")
    plain.save()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "tests" / "fixtures" / "wordpress")
    args = ap.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="wp-record-") as tmp, \
            WordPressServer(Path(tmp), home_url=HOME_URL, title="The Python Tutorial") as wp:
        record(wp, args.out)
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"wrote {args.out} ({size:,} bytes)")


if __name__ == "__main__":
    main()
