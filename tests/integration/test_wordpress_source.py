"""WordPressSource against real WordPress answers, replayed by a real HTTP server.

The answers were recorded from WordPress 6.1 (scripts/record_wordpress_fixtures.py); `ids.json` says which id
plays which part, and expected values are read from the recorded bodies. Faults WordPress cannot be asked
for (503s, slow answers, broken bytes) are scripted on top of the recordings.
"""

from __future__ import annotations

import html
import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from shared.errors import NotPublic, PermanentError, TransientError
from shared.sites import SiteConfig
from shared.sources.http import HttpClient
from shared.sources.wordpress import WordPressSource
from tests.cms.wordpress import WORDPRESS_TREE, WordPressServer, live_pids
from tests.conftest import unavailable
from tests.fakes.cms_replay import ReplayServer, Reply

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "wordpress"
IDS: dict[str, Any] = json.loads((FIXTURES / "ids.json").read_text())
CANARY = "CANARY-PRIVATE-7f3a"


@pytest.fixture
def replay() -> Iterator[ReplayServer]:
    with ReplayServer(FIXTURES) as server:
        yield server


def make_source(url: str, *, max_bytes: int = 2_000_000, timeout: float = 5.0, retries: int = 2,
                client_max_bytes: int = 8_000_000, **site: Any) -> WordPressSource:
    client = HttpClient(timeout=timeout, retries=retries, max_bytes=client_max_bytes, sleep=lambda s: None)
    return WordPressSource(SiteConfig(name="blog", kind="wordpress", url=url, **site), client,
                           max_bytes=max_bytes, page_size=IDS["page_size"])


def recorded(key: str) -> dict[str, Any]:
    entry = json.loads((FIXTURES / "index.json").read_text())[key]
    return dict(json.loads((FIXTURES / entry["body_file"]).read_bytes()))


def test_a_published_page_is_fetched_with_its_fields(replay: ReplayServer) -> None:
    body = recorded(f"/wp-json/wp/v2/pages/{IDS['page']}")
    doc = make_source(replay.url).fetch(f"pages:{IDS['page']}")
    assert (doc.site, doc.source_id, doc.doc_type) == ("blog", f"pages:{IDS['page']}", "page")
    assert (doc.url, doc.html) == (body["link"], body["content"]["rendered"])
    assert 'id="whetting-your-appetite"' in doc.html
    assert doc.title == html.unescape(body["title"]["rendered"])
    assert doc.modified_at == datetime.fromisoformat(body["modified_gmt"]).replace(tzinfo=UTC)
    assert (doc.audience, doc.language) == ("public", None)


def test_html_entities_in_a_title_are_decoded(replay: ReplayServer) -> None:
    assert "&#8217;" in recorded(f"/wp-json/wp/v2/posts/{IDS['post']}")["title"]["rendered"]
    doc = make_source(replay.url, language="en").fetch(f"posts:{IDS['post']}")
    assert "’" in doc.title and "&" in doc.title and "&#" not in doc.title
    assert doc.language == "en"


@pytest.mark.parametrize(("part", "reason"), [
    ("draft", "HTTP 401 rest_forbidden"),
    ("private", "HTTP 401 rest_forbidden"),
    ("deleted", "HTTP 404 rest_post_invalid_id"),
    ("protected", "password-protected"),
])
def test_a_draft_private_deleted_or_protected_post_is_not_public(replay: ReplayServer, part: str,
                                                                 reason: str) -> None:
    with pytest.raises(NotPublic) as exc:
        make_source(replay.url).fetch(f"posts:{IDS[part]}")
    assert (exc.value.source_id, exc.value.reason) == (f"posts:{IDS[part]}", reason)


def test_a_bare_id_tries_posts_then_pages(replay: ReplayServer) -> None:
    doc = make_source(replay.url).fetch(str(IDS["page"]))
    assert doc.source_id == f"pages:{IDS['page']}"
    assert replay.hits(f"/wp-json/wp/v2/posts/{IDS['page']}") == 1


def test_an_id_of_the_wrong_form_is_a_permanent_error(replay: ReplayServer) -> None:
    with pytest.raises(PermanentError, match="not a WordPress id"):
        make_source(replay.url).fetch("posts/12")


def test_plain_permalinks_fall_back_to_rest_route_and_stay_there() -> None:
    with ReplayServer(FIXTURES / "plain-permalinks") as plain:
        src = make_source(plain.url)
        assert src.fetch(f"posts:{IDS['post']}").source_id == f"posts:{IDS['post']}"
        with pytest.raises(NotPublic, match="404"):
            src.fetch(f"posts:{IDS['deleted']}")
        assert plain.hits(f"/wp-json/wp/v2/posts/{IDS['post']}") == 1
        assert plain.hits(f"/wp-json/wp/v2/posts/{IDS['deleted']}") == 0  # straight to ?rest_route= now


def test_the_rest_route_form_gives_the_same_document(replay: ReplayServer) -> None:
    src = make_source(replay.url)
    src.use_rest_route = True
    assert src.fetch(f"posts:{IDS['post']}") == make_source(replay.url).fetch(f"posts:{IDS['post']}")


def test_listing_pages_follows_every_page_of_results(replay: ReplayServer) -> None:
    listed = list(make_source(replay.url).list_documents(types=("pages",)))
    assert sorted(int(d.source_id.split(":")[1]) for d in listed) == IDS["pages"]
    assert len(IDS["pages"]) > IDS["page_size"], "the recording must span several pages"
    assert all(d.doc_type == "page" and d.modified_at and d.modified_at.tzinfo == UTC for d in listed)


def test_listing_defaults_to_the_sites_post_types_and_filters_by_date(replay: ReplayServer) -> None:
    src = make_source(replay.url)
    everything = list(src.list_documents())
    assert {d.source_id for d in everything} == {f"pages:{i}" for i in IDS["pages"]} | {
        f"posts:{i}" for i in IDS["posts"]}
    since = datetime.fromisoformat(IDS["modified_after"])
    newer = list(src.list_documents(since=since, types=("posts",)))
    assert newer and {d.source_id for d in newer} == {
        d.source_id for d in everything if d.doc_type == "post" and d.modified_at and d.modified_at > since}


def test_credentials_are_sent_and_private_posts_carry_the_audience(replay: ReplayServer) -> None:
    src = make_source(replay.url, username="admin", app_password="abcd efgh ijkl")
    doc = src.fetch(f"posts:{IDS['private']}")
    assert CANARY in doc.html and doc.audience == "user:admin"
    assert all(r.headers.get("authorization", "").startswith("Basic ") for r in replay.requests)
    assert f"posts:{IDS['private']}" in {d.source_id for d in src.list_documents(types=("posts",))}


def test_a_draft_is_not_served_even_with_credentials(replay: ReplayServer) -> None:
    src = make_source(replay.url, username="admin", app_password="abcd efgh ijkl")
    with pytest.raises(NotPublic, match="status is 'draft'"):
        src.fetch(f"posts:{IDS['draft']}")


def test_rejected_credentials_are_an_error_not_an_empty_site(replay: ReplayServer) -> None:
    # WordPress answers a wrong application password as it answers a visitor; only users/me tells.
    replay.add("/wp-json/wp/v2/users/me?_fields=id", Reply.json(
        {"code": "rest_not_logged_in", "message": "You are not currently logged in.", "data": {"status": 401}}, 401))
    with pytest.raises(PermanentError, match="did not accept"):
        make_source(replay.url, username="admin", app_password="wrong").fetch(f"posts:{IDS['private']}")


def test_html_instead_of_json_is_a_permanent_error_with_a_clear_message(replay: ReplayServer) -> None:
    page = Reply(200, b"<!DOCTYPE html><html><body>Maintenance</body></html>", {"Content-Type": "text/html"})
    replay.add(f"/wp-json/wp/v2/posts/{IDS['post']}", page)
    replay.add(f"/?rest_route=/wp/v2/posts/{IDS['post']}", page)
    with pytest.raises(PermanentError, match=r"200 with text/html, not JSON: '<!DOCTYPE html>") as exc:
        make_source(replay.url).fetch(f"posts:{IDS['post']}")
    assert exc.value.stage == "fetch"


def test_a_404_html_page_is_not_mistaken_for_a_deleted_post(replay: ReplayServer) -> None:
    missing = Reply(404, b"<html>Not Found</html>", {"Content-Type": "text/html"})
    replay.add(f"/wp-json/wp/v2/posts/{IDS['post']}", missing)
    replay.add(f"/?rest_route=/wp/v2/posts/{IDS['post']}", missing)
    with pytest.raises(PermanentError, match="is this a WordPress REST API"):
        make_source(replay.url).fetch(f"posts:{IDS['post']}")


def test_two_503s_then_a_200_is_a_success(replay: ReplayServer) -> None:
    key = f"/wp-json/wp/v2/pages/{IDS['page']}"
    replay.add(key, Reply(503), Reply(503), replay.recording(key))
    assert make_source(replay.url, retries=2).fetch(f"pages:{IDS['page']}").title
    assert replay.hits(key) == 3


def test_a_server_that_keeps_answering_503_is_a_transient_error(replay: ReplayServer) -> None:
    key = f"/wp-json/wp/v2/pages/{IDS['page']}"
    replay.add(key, Reply(503, b"busy"))
    with pytest.raises(TransientError, match="HTTP 503"):
        make_source(replay.url, retries=2).fetch(f"pages:{IDS['page']}")
    assert replay.hits(key) == 3


def test_a_timeout_is_a_transient_error(replay: ReplayServer) -> None:
    key = f"/wp-json/wp/v2/pages/{IDS['page']}"
    replay.add(key, Reply(200, b"{}", {"Content-Type": "application/json"}, delay=1.0))
    with pytest.raises(TransientError, match="timed out"):
        make_source(replay.url, timeout=0.1, retries=1).fetch(f"pages:{IDS['page']}")


def test_content_over_the_size_cap_is_a_permanent_error(replay: ReplayServer) -> None:
    with pytest.raises(PermanentError, match="content is over the 1000-byte cap"):
        make_source(replay.url, max_bytes=1000).fetch(f"pages:{IDS['page']}")
    with pytest.raises(PermanentError, match="over the 2000-byte cap"):
        make_source(replay.url, client_max_bytes=2000).fetch(f"pages:{IDS['page']}")


def test_invalid_utf8_in_content_is_replaced_not_fatal(replay: ReplayServer) -> None:
    key = f"/wp-json/wp/v2/pages/{IDS['page']}"
    original = replay.recording(key)
    assert b"Whetting" in original.body
    replay.add(key, Reply(200, original.body.replace(b"Whetting", b"Wh\xe9tting"), original.headers))
    doc = make_source(replay.url).fetch(f"pages:{IDS['page']}")
    assert "Wh\ufffdtting" in doc.html


def test_the_source_reads_a_live_wordpress(tmp_path: Path) -> None:
    """The replayed answers are WordPress's: the same checks hold against a real one started here."""
    missing = [t for t in ("php", "mariadbd", "mariadb-install-db") if not shutil.which(t)]
    if missing or not WORDPRESS_TREE.is_dir():
        unavailable("WordPress (Debian: wordpress, php, mariadb-server)", f"missing {missing or WORDPRESS_TREE}")
    with WordPressServer(tmp_path / "wp") as wp:
        ids = wp.php_json("""
            $new = fn($status) => wp_insert_post(['post_title' => "Live & well", 'post_status' => $status,
                                                   'post_content' => '<h2 id="a">A</h2><p>Hello</p>']);
            echo json_encode(['post' => $new('publish'), 'draft' => $new('draft'), 'private' => $new('private')]);
        """)
        src = make_source(wp.base_url)
        doc = src.fetch(f"posts:{ids['post']}")
        assert (doc.title, doc.url) == ("Live & well", f"{wp.base_url}/live-well/")
        assert '<h2 id="a">A</h2>' in doc.html
        for part in ("draft", "private"):
            with pytest.raises(NotPublic, match="401"):
                src.fetch(f"posts:{ids[part]}")
        assert {d.source_id for d in src.list_documents(types=("posts",))} >= {f"posts:{ids['post']}"}
        assert f"posts:{ids['private']}" not in {d.source_id for d in src.list_documents()}
        authed = make_source(wp.base_url, username="admin", app_password=wp.create_app_password())
        assert authed.fetch(f"posts:{ids['private']}").audience == "user:admin"
        groups = list(wp.pids.values())
    assert groups and not [pid for g in groups for pid in live_pids(g)], "stop() left PHP workers or MariaDB"
