"""WagtailSource against real Wagtail 8 API v2 answers, replayed by a real HTTP server.

The answers were recorded from the test site in `tests/cms/wagtail_site` (scripts/record_wagtail_fixtures.py);
`ids.json` says which page plays which part. What Wagtail cannot be made to send on request (HTML where JSON
belongs, a cap message without a number) is scripted on top of the recordings.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from shared.errors import NotPublic, PermanentError
from shared.sites import SiteConfig
from shared.sources.http import HttpClient
from shared.sources.wagtail import WagtailSource, render_blocks, slugify
from tests.fakes.cms_replay import ReplayServer, Reply

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "wagtail"
IDS: dict[str, int] = json.loads((FIXTURES / "ids.json").read_text())
HOME = "http://wagtail.example.test"
ARTICLES = "/api/v2/pages/?type=app.ArticlePage&fields=last_published_at&order=id"


@pytest.fixture
def replay() -> Iterator[ReplayServer]:
    with ReplayServer(FIXTURES) as server:
        yield server


def make_source(url: str, *, max_bytes: int = 2_000_000, **options: Any) -> WagtailSource:
    client = HttpClient(timeout=5.0, retries=1, sleep=lambda s: None)
    return WagtailSource(SiteConfig(name="cms", kind="wagtail", url=url), client, max_bytes=max_bytes, **options)


def recorded(key: str, folder: Path = FIXTURES) -> Any:
    entry = json.loads((folder / "index.json").read_text())[key]
    return json.loads((folder / entry["body_file"]).read_bytes())


def test_a_streamfield_article_becomes_html_with_heading_anchors(replay: ReplayServer) -> None:
    page = recorded(f"/api/v2/pages/{IDS['article']}/?fields=*")
    doc = make_source(replay.url).fetch(str(IDS["article"]))
    assert (doc.site, doc.source_id, doc.language) == ("cms", str(IDS["article"]), "en")
    assert doc.doc_type == "app.ArticlePage"
    assert (doc.url, doc.title) == (f"{HOME}/getting-started-with-python/", "Getting Started with Python")
    assert doc.modified_at == datetime.fromisoformat(page["last_published_at"]).astimezone(UTC)
    assert doc.modified_at is not None and doc.modified_at.tzinfo == UTC
    assert '<h2 id="why-python">Why Python?</h2>' in doc.html
    assert '<h3 id="install">Installing packages</h3>' in doc.html  # an editor's own anchor wins
    assert "<p>Your first steps.</p>" in doc.html  # the intro field, before the body
    assert "<li>Batteries included</li>" in doc.html and "<td>security fixes</td>" in doc.html
    assert '<pre><code class="language-shell">python -m venv .venv\n. .venv/bin/activate' in doc.html
    assert doc.html.index("Your first steps") < doc.html.index("Why Python?") < doc.html.index("Installing")


def test_internal_links_point_to_public_urls_and_links_to_gone_pages_lose_their_href(replay: ReplayServer) -> None:
    html = make_source(replay.url).fetch(str(IDS["article"])).html
    assert f'<a href="{HOME}/virtual-environments-and-packages/">virtual environments</a>' in html
    assert "<a>old tutorial</a>" in html  # the deleted page answers 404
    assert '<a href="https://docs.python.org/3/">official docs</a>' in html  # external links are untouched
    assert "linktype" not in html and "<embed" not in html


def test_each_linked_page_is_looked_up_once(replay: ReplayServer) -> None:
    source = make_source(replay.url)
    source.fetch(str(IDS["article"]))
    source.fetch(str(IDS["note"]))  # links to the same page
    assert replay.hits(f"/api/v2/pages/{IDS['link_target']}/") == 1
    assert replay.hits(f"/api/v2/pages/{IDS['deleted']}/") == 1


def test_a_cached_link_is_looked_up_again_after_its_ttl(replay: ReplayServer) -> None:
    now = [0.0]
    source = make_source(replay.url, clock=lambda: now[0])
    source.fetch(str(IDS["note"]))
    now[0] = 301.0
    source.fetch(str(IDS["note"]))
    assert replay.hits(f"/api/v2/pages/{IDS['link_target']}/") == 2


def test_a_page_without_a_streamfield_is_built_from_its_rich_text_field(replay: ReplayServer) -> None:
    doc = make_source(replay.url).fetch(str(IDS["note"]))
    assert doc.doc_type == "app.NotePage"
    assert doc.html == (f'<h2>Python 3.11</h2><p>Faster CPython; see <a href="{HOME}/virtual-environments-and-'
                        'packages/">virtual environments</a>.</p>')  # and not the last_published_at string


@pytest.mark.parametrize("role", ["unpublished", "deleted"])
def test_unpublished_and_deleted_pages_are_not_public(replay: ReplayServer, role: str) -> None:
    with pytest.raises(NotPublic, match="404"):
        make_source(replay.url).fetch(str(IDS[role]))


def test_an_html_404_means_a_wrong_api_url_not_a_page_to_remove(replay: ReplayServer) -> None:
    replay.add("/api/v2/pages/5/?fields=*", Reply(404, b"<h1>Not Found</h1>", {"Content-Type": "text/html"}))
    with pytest.raises(PermanentError, match="without JSON"):
        make_source(replay.url).fetch("5")


def test_html_instead_of_json_is_a_permanent_error(replay: ReplayServer) -> None:
    replay.add("/api/v2/pages/5/?fields=*", Reply(200, b"<!doctype html><p>Maintenance</p>",
                                                  {"Content-Type": "text/html"}))
    with pytest.raises(PermanentError, match="not JSON"):
        make_source(replay.url).fetch("5")


@pytest.mark.parametrize("source_id", ["abc", "5/../6", "", "-1"])
def test_an_id_that_is_not_a_page_number_is_rejected_without_a_request(replay: ReplayServer, source_id: str) -> None:
    with pytest.raises(PermanentError, match="numbers"):
        make_source(replay.url).fetch(source_id)
    assert replay.requests == []


def test_a_page_over_the_size_cap_is_rejected(replay: ReplayServer) -> None:
    with pytest.raises(PermanentError, match="cap"):
        make_source(replay.url, max_bytes=500).fetch(str(IDS["article"]))


def test_listing_pages_through_a_type_two_at_a_time(replay: ReplayServer) -> None:
    listed = list(make_source(replay.url, page_size=2).list_documents(types=("app.ArticlePage",)))
    expected = [item for n in (0, 2, 4) for item in recorded(f"{ARTICLES}&limit=2&offset={n}")["items"]]
    assert [d.source_id for d in listed] == [str(item["id"]) for item in expected]
    assert len(listed) == recorded(f"{ARTICLES}&limit=2&offset=0")["meta"]["total_count"] == 5
    assert {d.doc_type for d in listed} == {"app.ArticlePage"}
    assert all(d.modified_at is not None and d.modified_at.tzinfo == UTC for d in listed)
    assert [replay.hits(f"{ARTICLES}&limit=2&offset={n}") for n in (0, 2, 4)] == [1, 1, 1]


def test_listing_everything_on_a_stock_api_asks_each_page_type_for_modification_times(
        replay: ReplayServer) -> None:
    listed = {d.source_id: d for d in make_source(replay.url).list_documents()}
    every = recorded("/api/v2/pages/?order=id&limit=100&offset=0")["items"]
    assert sorted(listed) == sorted(str(item["id"]) for item in every)
    assert listed["2"].doc_type == "wagtailcore.Page" and listed["2"].modified_at is None  # the site's root page
    assert listed[str(IDS["note"])].doc_type == "app.NotePage"
    assert all(d.modified_at is not None for k, d in listed.items() if k != "2")
    assert str(IDS["unpublished"]) not in listed and str(IDS["deleted"]) not in listed


def test_listing_since_a_time_skips_pages_not_changed_since(replay: ReplayServer) -> None:
    source = make_source(replay.url)
    times = sorted(d.modified_at for d in source.list_documents(types=("app.ArticlePage",)) if d.modified_at)
    recent = list(source.list_documents(since=times[-2], types=("app.ArticlePage",)))
    assert sorted(d.modified_at for d in recent if d.modified_at) == times[-2:]


def test_a_400_for_a_too_large_limit_pages_with_the_limit_wagtail_names() -> None:
    folder = FIXTURES / "limit-max-20"
    assert recorded(f"{ARTICLES}&limit=100&offset=0", folder)["message"] == "limit cannot be higher than 20"
    with ReplayServer(folder) as replay:
        listed = list(make_source(replay.url).list_documents(types=("app.ArticlePage",)))
        assert len(listed) == 5
        assert replay.hits(f"{ARTICLES}&limit=100&offset=0") == 1
        assert replay.hits(f"{ARTICLES}&limit=20&offset=0") == 1


def test_a_limit_400_without_a_number_falls_back_to_wagtails_default_of_20(replay: ReplayServer) -> None:
    replay.add(f"{ARTICLES}&limit=100&offset=0", Reply.json({"message": "limit too large"}, status=400))
    replay.add(f"{ARTICLES}&limit=20&offset=0", Reply.json(recorded(f"{ARTICLES}&limit=100&offset=0")))
    assert len(list(make_source(replay.url).list_documents(types=("app.ArticlePage",)))) == 5


def test_an_unknown_page_type_is_a_permanent_error_naming_wagtails_reason(replay: ReplayServer) -> None:
    replay.add("/api/v2/pages/?type=posts&fields=last_published_at&order=id&limit=100&offset=0",
               Reply.json({"message": "type doesn't exist"}, status=400))
    with pytest.raises(PermanentError, match="type doesn't exist"):
        list(make_source(replay.url).list_documents(types=("posts",)))


@pytest.mark.parametrize(("blocks", "expected"), [
    ([{"type": "heading", "value": "Café & Co", "id": "u1"}], '<h2 id="cafe-co">Café &amp; Co</h2>'),
    ([{"type": "heading", "value": "日本", "id": "u1"}], '<h2 id="u1">日本</h2>'),  # no ASCII slug: the block id
    ([{"type": "section_heading", "value": {"heading_text": "Setup", "size": "h3"}}], '<h3 id="setup">Setup</h3>'),
    ([{"type": "quote", "value": "Simple is better than complex."}], "<p>Simple is better than complex.</p>"),
    ([{"type": "code", "value": "x < 1"}], "<pre><code>x &lt; 1</code></pre>"),
    ([{"type": "code", "value": {"language": "py", "code": "1"}}], '<pre><code class="language-py">1</code></pre>'),
    ([{"type": "raw_html", "value": "<hr>"}], "<hr>"),
    ([{"type": "image", "value": 12}], ""),
    ([{"type": "card", "value": {"title": "Note", "text": "<p>Body</p>", "style": "wide"}}], "<p>Body</p>"),
    ([{"type": "items", "value": [{"type": "item", "value": "One more thing"}]}], "<p>One more thing</p>"),
])
def test_blocks_of_any_kind_render_best_effort(blocks: list[Any], expected: str) -> None:
    assert render_blocks(blocks) == expected


def test_slugify_matches_djangos_for_typical_headings() -> None:
    assert slugify("Why Python?") == "why-python"
    assert slugify("  4.2. for Statements ") == "42-for-statements"
    assert slugify("Ünïcode—dash") == "unicodedash"
