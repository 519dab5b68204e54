"""The `cmsrag` command as a user runs it: a real subprocess, real exit codes, real messages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import delete_queues

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CMSRAG_", "DATABASE_URL", "RABBITMQ_URL"))}
    return subprocess.run([sys.executable, "-m", "services.cli", *args], cwd=ROOT, env={**base, **(env or {})},
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def files_env(pg_url: str, tmp_path: Path, db) -> dict[str, str]:
    site = tmp_path / "html"
    site.mkdir()
    (site / "kettle.html").write_text("<html><head><title>Kettles</title></head><body><main><h1>Kettles</h1>"
                                      "<h2 id='descaling'>Descaling</h2><p>Descale the kettle with vinegar "
                                      "once a month.</p></main></body></html>")
    sites = [{"name": "docs", "kind": "files", "path": str(site), "url": "https://example.org/"}]
    return {"DATABASE_URL": pg_url, "CMSRAG_SITES": json.dumps(sites), "CMSRAG_EMBEDDER": "fake",
            "CMSRAG_DATA_DIR": str(tmp_path / "data")}


def test_a_bad_setting_exits_2_and_names_the_variable():
    r = run("status", env={"CMSRAG_EMBEDDER": "magic", "CMSRAG_CHUNK_TOKENS": "x"})
    assert r.returncode == 2
    assert "CMSRAG_EMBEDDER='magic'" in r.stderr and "CMSRAG_CHUNK_TOKENS='x'" in r.stderr


def test_an_unknown_subcommand_or_argument_is_a_usage_error():
    assert run("frobnicate").returncode == 2
    r = run("search", "x", "-k", "0")
    assert r.returncode == 2 and "at least 1" in r.stderr


def test_index_of_an_unknown_site_says_which_sites_exist(files_env):
    r = run("index", "nope", "1", env=files_env)
    assert r.returncode == 1
    assert "unknown site 'nope'; configured sites: docs" in r.stderr


@pytest.mark.parametrize("command", [["status"], ["failures"], ["retry", "--all"], ["keys", "list"]])
def test_a_command_on_a_database_never_migrated_says_to_run_migrate(files_env, unmigrated_url, command):
    r = run(*command, env={**files_env, "DATABASE_URL": unmigrated_url})
    assert r.returncode == 1, r.stderr
    assert "cmsrag schema is missing or out of date" in r.stderr and "run `cmsrag migrate`" in r.stderr
    assert "Traceback" not in r.stderr


def test_index_then_search_then_status_in_dev_mode(files_env):
    r = run("index", "docs", "kettle.html", env=files_env)
    assert r.returncode == 0, r.stderr
    assert "dev_mode_in_memory_broker" in r.stderr, "dev mode must say so"
    assert "indexed: Kettles" in r.stdout
    r = run("search", "descale", "the", "kettle", "--json", env=files_env)
    assert r.returncode == 0, r.stderr
    results = json.loads(r.stdout)["results"]
    assert results[0]["link"] == "https://example.org/kettle.html#descaling"
    r = run("status", "--json", env=files_env)
    [site] = json.loads(r.stdout)["sites"]
    assert (site["site"], site["documents"], site["pending"], site["failures"]) == ("docs", 1, 0, 0)


def test_an_empty_search_is_refused_with_a_message(files_env):
    r = run("search", "  ", env=files_env)
    assert r.returncode == 1 and "search needs some text" in r.stderr


def test_retry_without_ids_explains_itself(files_env):
    r = run("retry", env=files_env)
    assert r.returncode == 2 and "--all" in r.stdout


def test_the_worker_refuses_to_start_without_rabbitmq(files_env):
    r = run("worker", env=files_env)
    assert r.returncode == 1 and "needs RabbitMQ" in r.stderr


def test_the_worker_drains_the_queue_and_stops_cleanly_on_sigterm(files_env, rabbitmq_url):
    env = {**files_env, "RABBITMQ_URL": rabbitmq_url, "CMSRAG_QUEUE_PREFIX": f"cli{os.getpid()}"}
    try:
        r = run("index", "docs", "kettle.html", env=env)
        assert r.returncode == 0, r.stderr
        assert "queued docs/kettle.html" in r.stdout
        worker = subprocess.Popen([sys.executable, "-m", "services.cli", "worker"], cwd=ROOT, env={**os.environ, **env},
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            r = run("index", "docs", "kettle.html", "--wait", "--timeout", "60", env=env)
            assert r.returncode == 0, r.stderr
            assert "indexed: Kettles" in r.stdout
        finally:
            worker.terminate()
            _, err = worker.communicate(timeout=60)
        assert worker.returncode == 0, err
        assert "worker_stopped" in err
    finally:
        delete_queues(rabbitmq_url, env["CMSRAG_QUEUE_PREFIX"])


@pytest.mark.slow
def test_the_demo_indexes_the_sample_site_and_answers_with_a_deep_link(tmp_path):
    r = run("demo", "--no-serve", env={"CMSRAG_DATA_DIR": str(tmp_path)}, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "20 documents indexed" in r.stdout
    assert "0 failed" in r.stdout
    assert "/tutorial/controlflow/#default-argument-values" in r.stdout


def test_ask_answers_with_citations_as_text_json_and_a_stream(files_env):
    assert run("index", "docs", "kettle.html", env=files_env).returncode == 0
    r = run("ask", "How", "often", "should", "I", "descale", "the", "kettle?", env=files_env)
    assert r.returncode == 0, r.stderr
    assert "[1]" in r.stdout and "https://example.org/kettle.html#descaling" in r.stdout
    r = run("ask", "How often should I descale the kettle?", "--json", env=files_env)
    body = json.loads(r.stdout)
    assert body["citations"][0]["url"] == "https://example.org/kettle.html#descaling" and not body["refused"]
    r = run("ask", "How often should I descale the kettle?", "--stream", "--site", "docs", env=files_env)
    assert r.returncode == 0 and "vinegar" in r.stdout


@pytest.mark.parametrize(("args", "message"), [
    (("ask", "  "), "ask needs a question"),
    (("ask", "x" * 1001), "the limit is 1000"),
    (("ask", "kettle", "--site", "nope"), "unknown site 'nope'"),
])
def test_ask_refuses_bad_input_with_exit_1_and_a_clear_message(files_env, args, message):
    r = run(*args, env=files_env)
    assert r.returncode == 1 and message in r.stderr
