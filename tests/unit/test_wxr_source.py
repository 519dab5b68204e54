"""WxrSource on the real sample export (made by WordPress itself, scripts/make_sample_wxr.py).

Expectations are read from the file with a plain ElementTree pass or from the recorded REST answers of the
same site, never typed in: regenerating the sample or the fixtures must not break these tests.
"""

from __future__ import annotations

import html
import json
import os
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shared.errors import NotPublic, PermanentError
from shared.sites import SiteConfig
from shared.sources.wxr import WxrSource, parse_wxr

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "python-tutorial.wxr"
REST_FIXTURES = ROOT / "tests" / "fixtures" / "wordpress"
CANARY = "CANARY-PRIVATE-7f3a"
WP = "{http://wordpress.org/export/1.2/}"
CONTENT = "{http://purl.org/rss/1.0/modules/content/}encoded"


def items(path: Path = SAMPLE) -> list[ET.Element]:
    return list(ET.parse(path).getroot().iter("item"))


def ids_where(**wanted: str) -> list[int]:
    """Post ids of the sample's items whose wp:* fields have the given values."""
    return [int(i.findtext(f"{WP}post_id", "")) for i in items()
            if all(i.findtext(f"{WP}{k}", "") == v for k, v in wanted.items())]


def source(path: Path = SAMPLE, max_bytes: int = 2_000_000, language: str | None = None) -> WxrSource:
    return WxrSource(SiteConfig(name="sample", kind="wxr", path=path, language=language), max_bytes=max_bytes)


def test_every_published_page_is_listed_with_its_modification_time() -> None:
    listed = {d.source_id: d for d in source().list_documents(types=("pages",))}
    expected = ids_where(post_type="page", status="publish", post_password="")
    assert expected, "the sample has published pages"
    assert set(listed) == {f"pages:{i}" for i in expected}
    assert all(d.doc_type == "page" and d.modified_at and d.modified_at.tzinfo == UTC for d in listed.values())


def test_listing_since_a_time_keeps_only_later_changes() -> None:
    everything = list(source().list_documents())
    since = sorted(d.modified_at for d in everything if d.modified_at)[len(everything) // 2]
    later = list(source().list_documents(since=since))
    assert 0 < len(later) < len(everything)
    assert {d.source_id for d in later} == {
        d.source_id for d in everything if d.modified_at and d.modified_at > since}


def test_a_published_page_is_served_with_its_link_title_and_anchors() -> None:
    page = next(i for i in items() if i.findtext(f"{WP}post_name") == "appetite")
    doc = source().fetch(f"pages:{page.findtext(f'{WP}post_id')}")
    assert doc.url == page.findtext("link") and doc.url.endswith("/tutorial/appetite/")
    assert doc.title == page.findtext("title") and "Whetting Your Appetite" in doc.title
    assert 'id="whetting-your-appetite"' in doc.html and "¶" not in doc.html
    assert doc.modified_at == datetime.strptime(page.findtext(f"{WP}post_modified_gmt", ""),
                                                "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    assert (doc.doc_type, doc.audience, doc.language) == ("page", "public", "en-US")


def test_a_configured_language_wins_over_the_export_channel() -> None:
    doc = source(language="fr").fetch(f"pages:{ids_where(post_type='page')[0]}")
    assert doc.language == "fr"


def test_the_canary_is_in_the_file_but_never_served() -> None:
    canaries = [i for i in items() if CANARY in (i.findtext(CONTENT) or "")]
    assert len(canaries) >= 2, "the sample keeps its draft and private canaries (else this test proves nothing)"
    src = source()
    for item in canaries:
        with pytest.raises(NotPublic):
            src.fetch(f"posts:{item.findtext(f'{WP}post_id')}")
    for listed in src.list_documents():
        doc = src.fetch(listed.source_id)
        assert CANARY not in doc.html and CANARY not in doc.title


@pytest.mark.parametrize(("fields", "reason"), [
    ({"status": "draft"}, "status is 'draft'"),
    ({"status": "private"}, "status is 'private'"),
    ({"status": "publish", "post_password": "letmein"}, "password-protected"),
])
def test_a_draft_private_or_password_protected_post_is_not_public(fields: dict[str, str], reason: str) -> None:
    (post_id,) = ids_where(post_type="post", **fields)
    with pytest.raises(NotPublic) as exc:
        source().fetch(f"posts:{post_id}")
    assert exc.value.reason == reason and exc.value.source_id == f"posts:{post_id}"


def test_ids_map_to_the_wordpress_rest_source() -> None:
    recorded = json.loads((REST_FIXTURES / "ids.json").read_text())
    for base, key in (("pages", "page"), ("posts", "post")):
        body = json.loads((REST_FIXTURES / f"wp-json-wp-v2-{base}-{recorded[key]}.json").read_text())
        doc = source().fetch(f"{base}:{recorded[key]}")
        assert (doc.url, doc.doc_type) == (body["link"], body["type"])
        assert doc.modified_at == datetime.fromisoformat(body["modified_gmt"]).replace(tzinfo=UTC)
    page = json.loads((REST_FIXTURES / f"wp-json-wp-v2-pages-{recorded['page']}.json").read_text())
    assert source().fetch(f"pages:{recorded['page']}").title == html.unescape(page["title"]["rendered"])


def test_a_bare_id_finds_the_item_and_an_id_of_another_type_does_not() -> None:
    page_id = ids_where(post_type="page", status="publish")[0]
    assert source().fetch(str(page_id)).source_id == f"pages:{page_id}"
    with pytest.raises(NotPublic):
        source().fetch(f"posts:{page_id}")
    with pytest.raises(PermanentError):
        source().fetch("pages:twelve")


def test_the_file_is_parsed_once_for_many_fetches() -> None:
    parse_wxr.cache_clear()
    src = source()
    for listed in src.list_documents():
        src.fetch(listed.source_id)
    assert parse_wxr.cache_info().misses == 1


def test_a_replaced_file_is_read_again(tmp_path: Path) -> None:
    copy = tmp_path / "site.wxr"
    copy.write_bytes(SAMPLE.read_bytes())
    page_id = ids_where(post_type="page", status="publish")[0]
    before = source(copy).fetch(f"pages:{page_id}").title
    copy.write_bytes(SAMPLE.read_bytes().replace(before.encode(), b"Renamed"))
    os.utime(copy, ns=(1, 1))  # a new mtime even on coarse-grained file systems
    assert source(copy).fetch(f"pages:{page_id}").title == "Renamed"


def test_a_file_that_is_not_xml_is_a_permanent_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.wxr"
    bad.write_text("<html><body>Export failed: out of memory")
    with pytest.raises(PermanentError, match="not a valid WXR"):
        list(source(bad).list_documents())


def test_content_over_the_size_cap_is_a_permanent_error() -> None:
    page_id = ids_where(post_type="page", status="publish")[0]
    with pytest.raises(PermanentError, match="cap"):
        source(max_bytes=100).fetch(f"pages:{page_id}")


def test_custom_types_are_served_and_site_machinery_is_not(tmp_path: Path) -> None:
    def item(post_id: int, post_type: str) -> str:
        return (f"<item><title>T{post_id}</title><link>https://x.example/{post_id}/</link>"
                f"<content:encoded><![CDATA[<p>{post_type}</p>]]></content:encoded>"
                f"<wp:post_id>{post_id}</wp:post_id><wp:post_type>{post_type}</wp:post_type>"
                "<wp:status>publish</wp:status><wp:post_password></wp:post_password>"
                "<wp:post_modified_gmt>0000-00-00 00:00:00</wp:post_modified_gmt></item>")
    wxr = tmp_path / "types.wxr"
    wxr.write_text('<rss xmlns:content="http://purl.org/rss/1.0/modules/content/" '
                   'xmlns:wp="http://wordpress.org/export/1.1/"><channel>'
                   + item(1, "book") + item(2, "attachment") + item(3, "nav_menu_item") + item(4, "wp_template")
                   + "</channel></rss>")
    listed = list(source(wxr).list_documents())
    assert [d.source_id for d in listed] == ["books:1"]
    assert listed[0].modified_at is None  # WordPress's zero date is no date
    with pytest.raises(NotPublic, match="not a content type"):
        source(wxr).fetch("2")
