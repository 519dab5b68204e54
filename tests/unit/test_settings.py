"""Settings and sites: valid environments parse; every bad value is reported, all at once, in plain words."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.errors import ConfigError, UnknownSite
from shared.settings import Settings


def sites_env(tmp_path: Path, sites: list[dict]) -> dict[str, str]:
    return {"CMSRAG_SITES": json.dumps(sites), "CMSRAG_DATA_DIR": str(tmp_path)}


def test_an_empty_environment_configures_the_bundled_sample_site():
    s = Settings.from_env({})
    assert [(x.name, x.kind) for x in s.sites] == [("sample", "wxr")]
    assert s.sites[0].path is not None and s.sites[0].path.is_file()
    assert (s.embedder, s.database_url, s.rabbitmq_url) == ("local", None, None)


def test_several_sites_parse_with_secrets_read_from_the_environment(tmp_path):
    env = sites_env(tmp_path, [
        {"name": "blog", "kind": "wordpress", "url": "https://blog.example.org/", "webhook_secret": "env:BLOG_SECRET",
         "username": "bot", "app_password": "env:BLOG_APP_PW"},
        {"name": "www", "kind": "wagtail", "url": "http://127.0.0.1:8000", "webhook_secrets": ["a" * 16, "b" * 16]},
    ])
    env |= {"BLOG_SECRET": "s" * 32, "BLOG_APP_PW": "abcd efgh"}
    s = Settings.from_env(env)
    blog = s.site("blog")
    assert blog.url == "https://blog.example.org"
    assert blog.webhook_secrets == ("s" * 32,)
    assert blog.audience == "user:bot"
    assert s.site("www").webhook_secrets == ("a" * 16, "b" * 16)
    assert "abcd" not in repr(blog), "secrets stay out of reprs and logs"


def test_an_unknown_site_names_the_configured_ones():
    with pytest.raises(UnknownSite, match="configured sites: sample"):
        Settings.from_env({}).site("nope")


@pytest.mark.parametrize(("env", "expected"), [
    ({"CMSRAG_EMBEDDER": "magic"}, "CMSRAG_EMBEDDER='magic': must be one of local, openai"),
    ({"CMSRAG_CHUNK_TOKENS": "many"}, "CMSRAG_CHUNK_TOKENS='many' is not a valid int"),
    ({"CMSRAG_CHUNK_TOKENS": "4"}, "CMSRAG_CHUNK_TOKENS='4': must be 16..8000"),
    ({"CMSRAG_CHUNK_TOKENS": "100", "CMSRAG_CHUNK_OVERLAP": "100"}, "must be smaller than CMSRAG_CHUNK_TOKENS"),
    ({"CMSRAG_MAX_BACKOFF_MS": "3600000"}, "well below RabbitMQ's consumer timeout"),
    ({"CMSRAG_HTTP_TIMEOUT": "-1"}, "must be greater than 0"),
    ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL is not a PostgreSQL connection string"),
    ({"RABBITMQ_URL": "http://x"}, "RABBITMQ_URL must start with amqp://"),
    ({"CMSRAG_EMBEDDER": "openai"}, "needs OPENAI_API_KEY"),
    ({"CMSRAG_EMBEDDER": "openai-compatible"}, "needs CMSRAG_EMBED_BASE_URL"),
    ({"CMSRAG_LOG_FORMAT": "xml"}, "must be one of console, json"),
    ({"CMSRAG_SITES": "[{"}, "CMSRAG_SITES is not valid JSON"),
    ({"CMSRAG_SITES_FILE": "/nonexistent/sites.toml"}, "no such file"),
])
def test_a_bad_setting_gets_a_message_that_names_it(env, expected):
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env)
    assert any(expected in p for p in info.value.problems), info.value.problems


def test_every_problem_is_reported_at_once(tmp_path):
    env = {"CMSRAG_EMBEDDER": "magic", "CMSRAG_WORKER_THREADS": "0", "DATABASE_URL": "x://"}
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env)
    assert len(info.value.problems) == 3


@pytest.mark.parametrize(("site", "expected"), [
    ({"name": "Bad Name", "kind": "wordpress"}, "must be lower-case"),
    ({"name": "a", "kind": "drupal"}, "kind 'drupal' must be one of"),
    ({"name": "a", "kind": "wordpress"}, "needs url"),
    ({"name": "a", "kind": "wordpress", "url": "ftp://x"}, "must be an http(s) URL"),
    ({"name": "a", "kind": "files"}, "needs path"),
    ({"name": "a", "kind": "files", "path": "/nonexistent"}, "is not a folder"),
    ({"name": "a", "kind": "wxr", "path": "/nonexistent.xml"}, "is not a file"),
    ({"name": "a", "kind": "wagtail", "url": "http://x", "webhook_secret": "short"}, "at least 16 characters"),
    ({"name": "a", "kind": "wagtail", "url": "http://x", "webhook_secret": "env:NOPE"}, "NOPE is not set"),
    ({"name": "a", "kind": "wordpress", "url": "http://x", "username": "u"}, "go together"),
    ({"name": "a", "kind": "wordpress", "url": "http://x", "colour": "red"}, "unknown keys colour"),
    ("not a table", "must be a table"),
])
def test_a_bad_site_gets_a_message_that_names_it(tmp_path, site, expected):
    with pytest.raises(ConfigError) as info:
        Settings.from_env(sites_env(tmp_path, [site]))
    assert any(expected in p for p in info.value.problems), info.value.problems


def test_a_site_name_used_twice_is_refused(tmp_path):
    site = {"name": "a", "kind": "wagtail", "url": "http://x"}
    with pytest.raises(ConfigError, match="configured twice"):
        Settings.from_env(sites_env(tmp_path, [site, site]))


def test_sites_can_come_from_a_toml_file_with_paths_relative_to_it(tmp_path):
    (tmp_path / "html").mkdir()
    f = tmp_path / "sites.toml"
    f.write_text('[[site]]\nname = "docs"\nkind = "files"\npath = "html"\nurl = "https://docs.example.org/"\n')
    s = Settings.from_env({"CMSRAG_SITES_FILE": str(f)})
    assert s.site("docs").path == (tmp_path / "html").resolve()


def test_a_broken_toml_file_is_reported_with_its_path(tmp_path):
    f = tmp_path / "sites.toml"
    f.write_text("[[site]\nname=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        Settings.from_env({"CMSRAG_SITES_FILE": str(f)})


def test_query_settings_report_bad_values_with_the_allowed_range_alongside_the_rest():
    env = {"CMSRAG_EMBEDDER": "fake", "CMSRAG_LLM_MAX_TOKENS": "5", "CMSRAG_ASK_PASSAGES": "x",
           "CMSRAG_LLM_PRICE_INPUT": "-1", "CMSRAG_RATE_PUBLIC": "lots", "CMSRAG_CHUNK_TOKENS": "x"}
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    problems = caught.value.problems
    assert "CMSRAG_LLM_MAX_TOKENS='5': must be 16..32000" in problems
    assert "CMSRAG_ASK_PASSAGES='x' is not a valid int" in problems
    assert "CMSRAG_LLM_PRICE_INPUT='-1': must be 0 or more" in problems
    assert any(p.startswith("CMSRAG_RATE_PUBLIC='lots' is not a valid") for p in problems)
    assert any(p.startswith("CMSRAG_CHUNK_TOKENS='x'") for p in problems)


def test_unset_optional_prices_stay_unset():
    s = Settings.from_env({"CMSRAG_EMBEDDER": "fake"})
    assert s.query.llm_price_input is None and s.query.llm_price_output is None
