"""Search filters: strict parsing with messages that say what is wrong, and narrowing to a key's sites."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.api.filters import FilterError, Filters, parse_filters

SITES = {"blog", "docs"}


def test_no_filters_means_everything():
    assert parse_filters(None, SITES) == Filters()
    assert Filters().sql() == ("true", {})


def test_filters_accept_names_or_lists_and_dates_without_a_zone_are_utc():
    f = parse_filters({"site": "blog", "type": ["post", "page"], "language": "en",
                       "modified_after": "2024-01-01"}, SITES)
    assert f.sites == ("blog",) and f.types == ("post", "page") and f.language == "en"
    assert f.modified_after == datetime(2024, 1, 1, tzinfo=UTC)
    sql, params = f.sql()
    assert "d.site = ANY" in sql and "d.doc_type = ANY" in sql and params["f_lang_prefix"] == "en-%"


@pytest.mark.parametrize(("raw", "message"), [
    ("blog", "'filters' must be an object"),
    ({"colour": "red"}, "unknown filters: colour"),
    ({"site": "nope"}, "unknown site 'nope'"),
    ({"site": []}, "'filters.site' must be a name or a non-empty list"),
    ({"site": [1]}, "'filters.site' must be a name"),
    ({"type": {"a": 1}}, "'filters.type' must be a name"),
    ({"language": "english!"}, "'filters.language' must be a language tag"),
    ({"language": 5}, "'filters.language' must be a language tag"),
    ({"modified_after": "yesterday"}, "'filters.modified_after' must be an ISO 8601 date"),
    ({"modified_before": 20240101}, "'filters.modified_before' must be an ISO 8601 date"),
    ({"modified_after": "2024-02-01", "modified_before": "2024-01-01"}, "must be earlier"),
])
def test_bad_filters_are_refused_with_the_field_named(raw, message):
    with pytest.raises(FilterError, match=message):
        parse_filters(raw, SITES)


def test_a_scoped_key_sees_only_its_sites():
    assert Filters().within({"docs"}).sites == ("docs",)
    assert Filters(sites=("blog", "docs")).within({"docs"}).sites == ("docs",)
    assert Filters(sites=("blog",)).within(None).sites == ("blog",)
    assert Filters(sites=("blog",)).within({"docs"}).sites == ()
