"""Backfill and reconcile against a real database, with a folder of HTML files standing in for the CMS."""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.cli.app import App
from services.cli.indexing import cmd_backfill, cmd_reconcile
from tests.integration.test_pipeline import page, write


@pytest.fixture
def app(make_settings, db) -> Iterator[App]:
    application = App(make_settings())  # no RABBITMQ_URL: the dev-mode queue, worked off in-process
    yield application
    application.close()


def backfill(app: App, **kw: object) -> None:
    args = {"site": "docs", "since": None, "type": None, "wait": False, "timeout": 60, "quiet": True, "force": False}
    assert cmd_backfill(app, argparse.Namespace(**{**args, **kw})) == 0


def reconcile(app: App, **kw: object) -> None:
    args = {"site": "docs", "every": None, "dry_run": False, "json": False}
    assert cmd_reconcile(app, argparse.Namespace(**{**args, **kw})) == 0


def documents(app: App) -> dict[str, str]:
    with app.db.connection() as conn:
        return dict(conn.execute("SELECT source_id, status FROM documents").fetchall())


def touch(path: Path, seconds_later: int) -> None:
    t = time.time() + seconds_later
    os.utime(path, (t, t))


def make_pages(site_dir: Path, n: int) -> None:
    for i in range(n):
        write(site_dir, f"p{i}.html", page(f"Page {i}", {f"s{i}": f"Topic {i} explained at length. " * 5}))


def test_a_backfill_indexes_every_page_and_a_second_run_skips_them_all(app, site_dir, capsys):
    make_pages(site_dir, 6)
    backfill(app)
    assert documents(app) == {f"p{i}.html": "indexed" for i in range(6)}
    assert "6 new, 0 changed, 0 unchanged (skipped); 6 queued" in capsys.readouterr().out
    backfill(app)
    assert "0 new, 0 changed, 6 unchanged (skipped); 0 queued" in capsys.readouterr().out


def test_an_interrupted_backfill_resumes_with_what_is_left(app, site_dir, capsys):
    make_pages(site_dir, 6)
    from services.embedder.pipeline import Pipeline
    from shared.models import DocRef

    pipeline = Pipeline(app.settings, app.db, app.embedder)
    for i in range(4):  # the first run got this far before it was stopped
        pipeline.sync(DocRef("docs", f"p{i}.html"))
    backfill(app)
    assert "2 new, 0 changed, 4 unchanged (skipped); 2 queued" in capsys.readouterr().out
    assert len(documents(app)) == 6


def test_a_page_changed_since_it_was_indexed_is_queued_again_and_force_queues_all(app, site_dir, capsys):
    make_pages(site_dir, 3)
    backfill(app)
    write(site_dir, "p1.html", page("Page 1", {"s1": "Entirely new text about teapots. " * 5}))
    touch(site_dir / "p1.html", 60)
    capsys.readouterr()
    backfill(app)
    assert "0 new, 1 changed, 2 unchanged" in capsys.readouterr().out
    backfill(app, force=True)
    assert "0 new, 3 changed, 0 unchanged (skipped); 3 queued" in capsys.readouterr().out


def test_reconcile_adds_new_pages_and_removes_pages_the_cms_no_longer_has(app, site_dir, capsys):
    make_pages(site_dir, 3)
    backfill(app)
    (site_dir / "p0.html").unlink()
    write(site_dir, "p9.html", page("Page 9", {"s9": "A late addition. " * 5}))
    capsys.readouterr()
    reconcile(app, dry_run=True)
    assert "drift 2 (1 new, 0 changed, 1 gone) would queue" in capsys.readouterr().out
    assert documents(app) == {"p0.html": "indexed", "p1.html": "indexed", "p2.html": "indexed"}
    reconcile(app)
    assert documents(app) == {"p0.html": "removed", "p1.html": "indexed", "p2.html": "indexed",
                              "p9.html": "indexed"}
    reconcile(app)
    assert "drift 0" in capsys.readouterr().out.splitlines()[-1]


def test_reconcile_re_sends_a_request_whose_message_was_lost(app, site_dir, capsys):
    make_pages(site_dir, 1)
    with app.db.connection() as conn:  # recorded, but the publish never happened (or the message was lost)
        conn.execute("INSERT INTO pending (site, source_id, event, first_requested, last_requested) "
                     "VALUES ('docs', 'p0.html', 'update', now() - interval '1 hour', now() - interval '1 hour')")
    reconcile(app)
    assert "1 stuck request(s) re-sent" in capsys.readouterr().out
    assert documents(app) == {"p0.html": "indexed"}
    with app.db.connection() as conn:
        assert conn.execute("SELECT count(*) FROM pending").fetchone() == (0,)


def test_a_backfill_of_a_thousand_documents_indexes_every_one(app, site_dir, capsys):
    for i in range(1000):
        write(site_dir, f"n/{i:04}.html", f"<html><head><title>Note {i}</title></head><body><main><h1>Note {i}</h1>"
                                          f"<p>Note number {i} says something short.</p></main></body></html>")
    backfill(app)
    assert "1000 new, 0 changed, 0 unchanged (skipped); 1000 queued" in capsys.readouterr().out
    with app.db.connection() as conn:
        assert conn.execute("SELECT count(*), count(DISTINCT source_id) FROM documents WHERE status = 'indexed'"
                            ).fetchone() == (1000, 1000)
        assert conn.execute("SELECT count(*) FROM pending").fetchone() == (0,)
