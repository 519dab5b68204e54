"""Real processes for the query-side, provider and input scenarios, and the probes they read the outcome with.

The scenarios run cmsrag as it is deployed: the API and the receiver under gunicorn (`bench.common.gunicorn`),
`cmsrag worker` as a process of its own, the CLI as an operator types it. A fault that only shows across
processes (state cached in one gunicorn worker, a pool that leaks, a limit that does not hold between replicas)
then cannot hide behind a test client. The CMS is `tests.fakes.cms_replay` answering in WordPress's recorded
REST shapes, so the source code under test parses what a real WordPress sends.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import requests

from services.cli.app import App
from services.embedder.pipeline import Pipeline
from shared.embedders.fake import FakeEmbedder
from shared.models import DocRef
from shared.settings import Settings
from shared.signing import sign
from tests.conftest import TABLES
from tests.fakes.cms_replay import Reply
from tests.integration.test_pipeline import SECTIONS, page, write

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "wordpress"
SECRET = "reliability-webhook-secret-0123456789"
WP_HOME = "https://blog.example.org"
# Settings of the test process that must not leak into the processes it starts.
FOREIGN = ("DATABASE_URL", "RABBITMQ_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY",
           "ANTHROPIC_BASE_URL")


def environment(database_url: str, sites: list[dict[str, Any]], **variables: str) -> dict[str, str]:
    """A cmsrag process's environment: this one's without any cmsrag or provider setting, then the database,
    the sites (as `CMSRAG_SITES`), the fake embedder, quiet logs, no metrics port, a public rate limit out of
    the way (every request of a test comes from 127.0.0.1), and `variables`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMSRAG_") and k not in FOREIGN}
    env.update(DATABASE_URL=database_url, CMSRAG_SITES=json.dumps(sites), CMSRAG_EMBEDDER="fake",
               CMSRAG_LOG_LEVEL="WARNING", CMSRAG_METRICS_PORT="0", CMSRAG_RATE_PUBLIC="100000/min,burst=10000")
    env.update(variables)
    return env


def wordpress_site(url: str, name: str = "blog") -> dict[str, Any]:
    return {"name": name, "kind": "wordpress", "url": url, "webhook_secret": SECRET}


def docs_site(folder: Path) -> dict[str, Any]:
    """A `files` site of one page (tests.integration's frobnicator guide) in `folder`, as a `CMSRAG_SITES` entry."""
    write(folder, "frob.html", page("Frobnicator guide", SECTIONS))
    return {"name": "docs", "kind": "files", "path": str(folder), "url": "https://example.org/docs/"}


def fresh_index(env: dict[str, str], site: str, source_ids: list[str]) -> None:
    """Empty the database's tables, then index `source_ids` in this process: for the scenarios about what is
    served, not about how it got indexed."""
    settings = Settings.from_env(env)
    app = App(settings)
    try:
        with app.db.connection() as conn:
            conn.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
        pipeline = Pipeline(settings, app.db, FakeEmbedder())
        actions = [pipeline.sync(DocRef(site, source_id)).action for source_id in source_ids]
    finally:
        app.close()
    assert actions == ["indexed"] * len(source_ids), actions


def cli(env: dict[str, str], *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """`cmsrag ARGS` as its own process; the caller checks `returncode` and the output."""
    return subprocess.run([sys.executable, "-m", "services.cli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


@contextmanager
def worker(env: dict[str, str], log_dir: Path, *, threads: int = 2) -> Iterator[subprocess.Popen[bytes]]:
    """`cmsrag worker` until the block ends (then SIGTERM: in-flight messages finish or are requeued). Ready once
    it logs `worker_started`; its log is kept in `log_dir` for a failing test to show."""
    log_path = log_dir / f"worker-{uuid.uuid4().hex[:6]}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "services.cli", "worker", "--threads", str(threads)],
                                env={**env, "CMSRAG_LOG_LEVEL": "INFO"}, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        wait_for(lambda: proc.poll() is not None or b"worker_started" in log_path.read_bytes(), 60,
                 "cmsrag worker to start")
        if proc.poll() is not None:
            raise RuntimeError(f"cmsrag worker exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_for(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.05) -> float:
    """Seconds until `predicate()` is true; an AssertionError naming `what` after `timeout` seconds."""
    t0 = time.monotonic()
    while not predicate():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)
    return time.monotonic() - t0


def query(database_url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows of one statement on a connection of its own (the scenarios read the final state this way)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def count(database_url: str, sql: str, params: tuple[Any, ...] = ()) -> int:
    return int(query(database_url, sql, params)[0][0])


# -- WordPress, as its REST API answers an anonymous visitor ----------------------------------------------------


def post_key(post_id: int) -> str:
    return f"/wp-json/wp/v2/posts/{post_id}"


def post_link(post_id: int) -> str:
    return f"{WP_HOME}/p{post_id}/"


def wp_post(post_id: int, title: str, html: str, *, status: str = "publish", protected: bool = False,
            modified: str = "2026-01-01T00:00:00") -> Reply:
    """A post in the shape a real WordPress sent (tests/fixtures/wordpress), with this id, text and status."""
    data = json.loads((FIXTURES / "wp-json-wp-v2-posts-21.json").read_text(encoding="utf-8"))
    data.update(id=post_id, status=status, link=post_link(post_id), slug=f"p{post_id}", modified=modified,
                modified_gmt=modified, title={"rendered": title},
                content={"rendered": html, "protected": protected})
    return Reply.json(data)


# What WordPress answers an anonymous GET of a draft, private, scheduled or trashed post (recorded).
NOT_PUBLIC = Reply(401, (FIXTURES / "wp-json-wp-v2-posts-24.json").read_bytes(),
                   {"Content-Type": "application/json; charset=UTF-8"})


def send_webhook(session: requests.Session, receiver: str, event: str, doc_id: str, *,
                 site: str = "blog") -> requests.Response:
    """A signed webhook as the WordPress plugin sends it (docs/webhooks.md)."""
    body = json.dumps({"event": event, "id": doc_id}).encode()
    headers = {"Content-Type": "application/json", **sign([SECRET], f"wh_{uuid.uuid4().hex}", body)}
    return session.post(f"{receiver}/webhooks/wordpress/{site}", data=body, headers=headers, timeout=30)


def sse_events(body: str) -> list[tuple[str, dict[str, Any]]]:
    """`event:`/`data:` frames of a Server-Sent Events body, comments skipped."""
    out = []
    for block in body.split("\n\n"):
        lines = [x for x in block.splitlines() if x and not x.startswith(":")]
        if lines:
            data = "".join(x.removeprefix("data: ") for x in lines[1:])
            out.append((lines[0].removeprefix("event: "), json.loads(data)))
    return out


# -- processes and databases -------------------------------------------------------------------------------------


def server_pids(base_url: str) -> list[int]:
    """The gunicorn master and workers serving `base_url` (workers are forks: they share the master's command
    line, which names the bound address)."""
    bound = base_url.removeprefix("http://").encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if bound in cmdline and any(b"gunicorn" in part for part in cmdline):
                pids.append(int(entry.name))
    return pids


def rss_mb(pids: list[int]) -> float:
    """Resident memory of these processes together, in MB (from /proc; a process gone counts 0)."""
    total_kb = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        total_kb += next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return round(total_kb / 1024, 1)


@contextmanager
def scratch_database(server_url: str, model_id: str, dimensions: int) -> Iterator[str]:
    """A new database migrated for `model_id` (scenarios whose embedder is not the session database's fake)."""
    from shared.migrate import ensure_embedding_column, migrate

    name = f"cmsrag_rel_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = psycopg.conninfo.make_conninfo(server_url, dbname=name)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            migrate(conn)
            ensure_embedding_column(conn, model_id, dimensions)
        yield url
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
