"""API keys against a real Postgres: the create/list/revoke round trip, what is stored, what is refused, and the
`cmsrag keys` commands as an operator runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.api.access import Access
from services.api.keys import ApiKey, authenticate, create_key, list_keys, revoke_key
from services.cli import main
from shared.db import Database
from shared.errors import AccessDenied, CmsragError
from shared.query_settings import QuerySettings

MALFORMED = "malformed API key: expected cmsrag_<prefix>_<secret> as issued by `cmsrag keys create`"


def test_a_created_key_authenticates_and_is_listed_without_its_secret(db: Database):
    with db.connection() as conn:
        raw, key = create_key(conn, "widget", ["docs"], "60/min, burst=10")
        assert raw.startswith(f"cmsrag_{key.prefix}_") and len(raw) == len("cmsrag_") + 8 + 1 + 43
        assert (key.name, key.sites, key.rate, key.revoked_at) == ("widget", ("docs",), "60/min,burst=10", None)
        assert authenticate(conn, raw).id == key.id
        [listed] = list_keys(conn)
    assert listed.prefix == key.prefix and listed.last_used_at is not None
    assert "hash" not in repr(listed) and raw not in repr(listed)


def test_the_database_holds_no_raw_key_in_any_text_column(db: Database):
    with db.connection() as conn:
        raws = [create_key(conn, f"k{i}", None, None)[0] for i in range(3)]
        columns = [r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'api_keys' "
            "AND data_type IN ('text', 'ARRAY', 'character varying')").fetchall()]
        assert {"prefix", "key_hash", "name", "sites", "rate"} <= set(columns)
        stored = [str(v) for c in columns for (v,) in conn.execute(f"SELECT {c}::text FROM api_keys").fetchall()]
    for raw in raws:
        secret = raw.rsplit("_", 1)[1]
        assert not any(raw in v or secret in v for v in stored)


@pytest.mark.parametrize("bad", [
    "", "nonsense", "cmsrag_", "cmsrag_abc_def", "Bearer cmsrag_x", "cmsrag_ABCDEFGH_" + "a" * 43,
    "cmsrag_abcdefgh_" + "a" * 42, "cmsrag_abcdefgh_" + "a" * 42 + "!",
])
def test_malformed_keys_are_refused_with_401_without_echoing_them(db: Database, bad: str):
    with db.connection() as conn, pytest.raises(AccessDenied) as info:
        authenticate(conn, bad)
    assert info.value.status == 401
    assert str(info.value) == MALFORMED, "the message is fixed: it never carries what was sent"


def test_an_unknown_key_or_a_wrong_secret_for_a_real_prefix_is_refused(db: Database):
    with db.connection() as conn:
        _, key = create_key(conn, "widget", None, None)
        wrong_secret = f"cmsrag_{key.prefix}_" + "A" * 43
        unknown = "cmsrag_zzzzzzzz_" + "B" * 43
        for bad in (wrong_secret, unknown):
            with pytest.raises(AccessDenied) as info:
                authenticate(conn, bad)
            assert info.value.status == 401 and str(info.value) == "unknown API key"


def test_a_revoked_key_stops_working_at_once_on_every_replica(db: Database, pg_url: str):
    other_replica = Database(pg_url).open()
    try:
        settings = QuerySettings(public_access=False)
        here, there = Access(settings, db), Access(settings, other_replica)
        with db.connection() as conn:
            raw, key = create_key(conn, "widget", None, None)
        for headers in ({"Authorization": f"Bearer {raw}"}, {"X-API-Key": raw}):
            caller = there.caller(headers, "10.0.0.1")
            assert caller.key is not None and caller.key.id == key.id
        with db.connection() as conn:
            revoked = revoke_key(conn, key.prefix)
        assert revoked.revoked_at is not None
        for access in (here, there):
            with pytest.raises(AccessDenied) as info:
                access.caller({"Authorization": f"Bearer {raw}"}, "10.0.0.1")
            assert info.value.status == 401 and "revoked" in str(info.value)
    finally:
        other_replica.close()


def test_revoking_is_idempotent_by_prefix_or_id_and_unknown_keys_are_an_error(db: Database):
    with db.connection() as conn:
        _, key = create_key(conn, "widget", None, None)
        first = revoke_key(conn, key.prefix)
        again = revoke_key(conn, str(key.id))
        assert first.revoked_at == again.revoked_at is not None
        assert revoke_key(conn, f"cmsrag_{key.prefix}").id == key.id
        with pytest.raises(CmsragError, match="no API key with prefix or id 'nope1234'"):
            revoke_key(conn, "nope1234")


def test_last_used_is_written_at_most_once_a_minute(db: Database):
    with db.connection() as conn:
        raw, key = create_key(conn, "widget", None, None)
        first = authenticate(conn, raw).last_used_at
        assert first is not None and authenticate(conn, raw).last_used_at == first
        conn.execute("UPDATE api_keys SET last_used_at = last_used_at - interval '2 minutes' WHERE id = %s", (key.id,))
        assert authenticate(conn, raw).last_used_at > first  # type: ignore[operator]


def test_a_key_scoped_to_a_site_is_refused_other_sites_and_narrowed_when_naming_none(db: Database):
    access = Access(QuerySettings(), db)
    with db.connection() as conn:
        raw, _ = create_key(conn, "docs only", ["docs"], None)
    caller = access.caller({"authorization": f"bearer {raw}"}, "10.0.0.1")
    assert access.authorize(caller, "docs") == ("docs",)
    assert access.authorize(caller, None) == ("docs",) == caller.sites
    with pytest.raises(AccessDenied) as info:
        access.authorize(caller, "blog")
    assert info.value.status == 403 and "'blog'" in str(info.value) and raw not in str(info.value)


def test_without_a_key_the_caller_is_public_or_refused_by_configuration(db: Database):
    public = Access(QuerySettings(public_access=True), db).caller({}, "10.0.0.1")
    assert public.key is None and public.sites is None and public.address == "10.0.0.1"
    with pytest.raises(AccessDenied, match="this API needs an API key: send Authorization: Bearer") as info:
        Access(QuerySettings(public_access=False), db).caller({}, "10.0.0.1")
    assert info.value.status == 401


def test_a_wrong_key_is_refused_even_when_the_api_is_public(db: Database):
    with pytest.raises(AccessDenied) as info:
        Access(QuerySettings(public_access=True), db).caller({"X-API-Key": "cmsrag_zzzzzzzz_" + "C" * 43}, None)
    assert info.value.status == 401


# --- the `cmsrag keys` command -------------------------------------------------------------------------------


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, pg_url: str, tmp_path: Path, db: Database) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("CMSRAG_") or name in ("DATABASE_URL", "RABBITMQ_URL"):
            monkeypatch.delenv(name)
    site = tmp_path / "html"
    site.mkdir()
    sites = [{"name": "docs", "kind": "files", "path": str(site), "url": "https://example.org/"},
             {"name": "blog", "kind": "files", "path": str(site), "url": "https://blog.example.org/"}]
    monkeypatch.setenv("DATABASE_URL", pg_url)
    monkeypatch.setenv("CMSRAG_SITES", json.dumps(sites))
    monkeypatch.setenv("CMSRAG_EMBEDDER", "fake")
    monkeypatch.setenv("CMSRAG_DATA_DIR", str(tmp_path / "data"))


def test_keys_create_prints_the_key_once_with_a_warning_and_it_works(cli_env, db: Database, capsys):
    assert main(["keys", "create", "--name", "widget", "--site", "docs", "--rate", "30/min"]) == 0
    out = capsys.readouterr().out
    raw = next(word for word in out.split() if word.startswith("cmsrag_"))
    assert "cannot be shown again" in out and "sites docs" in out and "30/min,burst=6" in out
    with db.connection() as conn:
        assert authenticate(conn, raw).sites == ("docs",)


def test_keys_create_json_then_list_then_revoke(cli_env, db: Database, capsys):
    assert main(["keys", "create", "--name", "partner", "--json"]) == 0
    captured = capsys.readouterr()
    created = json.loads(captured.out)
    assert created["sites"] is None and created["key"].startswith("cmsrag_") and "cannot be shown" in captured.err
    assert main(["keys", "list", "--json"]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert listed == {k: v for k, v in created.items() if k != "key"}
    assert main(["keys", "list"]) == 0
    table = capsys.readouterr().out
    assert created["prefix"] in table and "partner" in table and created["key"] not in table
    assert main(["keys", "revoke", created["prefix"]]) == 0
    assert "revoked API key" in capsys.readouterr().out
    assert main(["keys", "revoke", str(created["id"]), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["revoked_at"] is not None
    with db.connection() as conn, pytest.raises(AccessDenied, match="revoked"):
        authenticate(conn, created["key"])


def test_keys_create_for_an_unknown_site_names_the_configured_ones(cli_env, db: Database, capsys):
    assert main(["keys", "create", "--name", "x", "--site", "shop"]) == 1
    assert "unknown site 'shop'; configured sites: docs, blog" in capsys.readouterr().err
    with db.connection() as conn:
        assert list_keys(conn) == []


def test_keys_create_with_a_bad_rate_is_a_usage_error_that_shows_the_form(cli_env, capsys):
    with pytest.raises(SystemExit) as info:
        main(["keys", "create", "--name", "x", "--rate", "lots"])
    assert info.value.code == 2
    assert "'lots' is not a rate such as '60/min'" in capsys.readouterr().err


def test_keys_revoke_of_an_unknown_key_fails_and_says_so(cli_env, capsys):
    assert main(["keys", "revoke", "abcdefgh"]) == 1
    assert "no API key with prefix or id 'abcdefgh'" in capsys.readouterr().err


def test_keys_list_with_no_keys_says_how_to_create_one(cli_env, capsys):
    assert main(["keys", "list"]) == 0
    assert "cmsrag keys create" in capsys.readouterr().out


def test_api_key_records_are_frozen():
    key = ApiKey(1, "abcdefgh", "n", None, None, None, None, None)  # type: ignore[arg-type]
    with pytest.raises(AttributeError):
        key.name = "other"  # type: ignore[misc]
    assert key.may_read("docs") and key.may_read(None)
    scoped = ApiKey(1, "abcdefgh", "n", ("docs",), None, None, None, None)  # type: ignore[arg-type]
    assert scoped.may_read("docs") and not scoped.may_read("blog") and not scoped.may_read(None)
