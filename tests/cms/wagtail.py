"""A real Wagtail 8 site (the project in `wagtail_site/`, SQLite, Django's server) started from an empty folder.

Tests and fixture scripts talk to the real thing rather than to a guess of it: API v2 answers, 404s for
unpublished and deleted pages, the stored form of rich text are Wagtail's own. Wagtail runs from its own
virtualenv (`python`, default `$CMSRAG_WAGTAIL_PYTHON`, else `.cmsrag/wagtail-venv/bin/python`), never from the
project's, so Django stays out of cmsrag's dependencies.

`migrate` takes ~12 s, so a migrated SQLite file is cached under `.cmsrag/cache/wagtail/`, keyed by the site's
source and the Wagtail/Django versions: a fresh site then starts in ~2 s. The server runs in its own session
(setsid) and is stopped by process group.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

SITE_DIR = Path(__file__).with_name("wagtail_site")
PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PYTHON = PROJECT_ROOT / ".cmsrag" / "wagtail-venv" / "bin" / "python"
DEFAULT_CACHE = PROJECT_ROOT / ".cmsrag" / "cache" / "wagtail"


def find_python() -> str | None:
    """The Wagtail venv's python, or None when there is none (tests then skip locally; CI must have one)."""
    configured = os.environ.get("CMSRAG_WAGTAIL_PYTHON")
    if configured:
        return configured
    return str(DEFAULT_PYTHON) if DEFAULT_PYTHON.exists() else None


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class WagtailServer:
    """One Wagtail site with its data in `folder`: `start()`, use `base_url` and the content helpers, `stop()`.

    `home_url` is the site's public address (what `meta.html_url` starts with) when it should differ from
    where it is served, e.g. to record fixtures whose URLs do not depend on a random port. `limit_max` is
    `WAGTAILAPI_LIMIT_MAX`; `extra_apps` are Django apps to install (found through `pythonpath`), e.g. a
    webhook plugin under test, and `settings` further Django settings (JSON values), e.g. that plugin's own.
    A restart without `fresh=True` keeps the content.
    """

    def __init__(self, folder: Path, port: int | None = None, *, python: str | None = None,
                 home_url: str | None = None, limit_max: int = 100, extra_apps: tuple[str, ...] = (),
                 pythonpath: tuple[Path, ...] = (), cache_dir: Path = DEFAULT_CACHE,
                 settings: dict[str, Any] | None = None) -> None:
        self.folder = Path(folder).resolve()
        self.port = port or free_port()
        self.python = python or find_python() or str(DEFAULT_PYTHON)
        self.home_url = (home_url or self.base_url).rstrip("/")
        self.limit_max = limit_max
        self.extra_apps = extra_apps
        self.pythonpath = pythonpath
        self.settings = dict(settings or {})
        self.cache_dir = cache_dir
        self.db = self.folder / "db.sqlite3"
        self.proc: subprocess.Popen[bytes] | None = None
        self._secret = secrets.token_hex(32)

    @property
    def base_url(self) -> str:
        """Where the site is served, without a trailing slash."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """The environment every process of this site runs with (read by `wagtail_site/cmsrag_site/settings.py`)."""
        paths = [str(SITE_DIR), *map(str, self.pythonpath)]
        return {**os.environ, "DJANGO_SETTINGS_MODULE": "cmsrag_site.settings", "PYTHONPATH": os.pathsep.join(paths),
                "CMSRAG_WAGTAIL_DB": str(self.db), "CMSRAG_WAGTAIL_PORT": str(self.port),
                "CMSRAG_WAGTAIL_BASE_URL": self.home_url, "CMSRAG_WAGTAIL_SECRET_KEY": self._secret,
                "CMSRAG_WAGTAIL_MEDIA": str(self.folder / "media"),
                "CMSRAG_WAGTAIL_STATIC": str(self.folder / "static"),
                "CMSRAG_WAGTAIL_LIMIT_MAX": str(self.limit_max),
                "CMSRAG_WAGTAIL_EXTRA_APPS": ",".join(self.extra_apps),
                "CMSRAG_WAGTAIL_EXTRA_SETTINGS": json.dumps(self.settings)}

    # -- life cycle ---------------------------------------------------------------------------------------

    def start(self, timeout: float = 60.0, *, fresh: bool = False) -> WagtailServer:
        """Create the database if needed (from the cache), then serve; `RuntimeError` with the log if that fails.

        Does nothing if already running, so `with WagtailServer(...).start(fresh=True) as site:` works.
        """
        if self.proc is not None and self.proc.poll() is None:
            return self
        if not Path(self.python).exists():
            raise RuntimeError(f"no Wagtail python at {self.python}: create it with `python3.11 -m venv "
                               f"{DEFAULT_PYTHON.parents[1]} && {DEFAULT_PYTHON.parent}/pip install wagtail`, "
                               "or set CMSRAG_WAGTAIL_PYTHON")
        (self.folder / "logs").mkdir(parents=True, exist_ok=True)
        if fresh:
            self.db.unlink(missing_ok=True)
        if not self.db.exists():
            shutil.copyfile(self._migrated_db(), self.db)
            if self.extra_apps:  # their migrations are not in the cached file (nor in its key)
                self.manage("migrate", "--noinput", "-v0")
        self._point_site_at_home_url()
        atexit.register(self.stop)
        with open(self.folder / "logs" / "runserver.log", "ab") as log:
            self.proc = subprocess.Popen(
                [self.python, "manage.py", "runserver", "--noreload", "--skip-checks", f"127.0.0.1:{self.port}"],
                cwd=SITE_DIR, env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        (self.folder / "pids.json").write_text(json.dumps({"runserver": self.proc.pid}))
        deadline = time.monotonic() + timeout
        while not self._ready():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"Wagtail did not become ready on {self.base_url}:\n{self._tail()}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        """Stop the server's process group (TERM, then KILL after 5 s); safe to call twice."""
        proc, self.proc = self.proc, None
        if proc is not None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        atexit.unregister(self.stop)

    def __enter__(self) -> WagtailServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- working with the site ----------------------------------------------------------------------------

    def manage(self, *args: str, timeout: float = 300) -> str:
        """Run `manage.py args` against this site's database; its stdout."""
        return self._run([self.python, "manage.py", *args], timeout)

    def shell(self, code: str, timeout: float = 300) -> str:
        """Run Python `code` with Django set up for this site; its stdout. Each call boots Django (~1.5 s)."""
        return self._run([self.python, "-c", "import django\ndjango.setup()\n" + code], timeout)

    def call(self, *calls: tuple[str, dict[str, Any]]) -> list[Any]:
        """Run functions of `app/testing.py` in one process, e.g. `call(("publish", {"page_id": 3}))`; results."""
        code = ("import json, sys\nfrom app import testing\n"
                "calls = json.loads(sys.argv[1])\n"
                "print(json.dumps([getattr(testing, name)(**kwargs) for name, kwargs in calls]))\n")
        out = self._run([self.python, "-c", "import django\ndjango.setup()\n" + code, json.dumps(calls)], 300)
        return list(json.loads(out.strip().splitlines()[-1]))

    def create_article(self, title: str, body: list[dict[str, Any]], **options: Any) -> int:
        """A new ArticlePage (see `app.testing.create_article`); its id."""
        return int(self.call(("create_article", {"title": title, "body": body, **options}))[0])

    def publish(self, page_id: int) -> None:
        self.call(("publish", {"page_id": page_id}))

    def unpublish(self, page_id: int) -> None:
        self.call(("unpublish", {"page_id": page_id}))

    def delete(self, page_id: int) -> None:
        self.call(("delete", {"page_id": page_id}))

    # -- internals ----------------------------------------------------------------------------------------

    def _run(self, argv: list[str], timeout: float) -> str:
        r = subprocess.run(argv, cwd=SITE_DIR, env=self.env, capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:3])}… exited with {r.returncode}:\n{r.stderr[-3000:]}")
        return r.stdout

    def _migrated_db(self) -> Path:
        """A migrated, empty database for this site's source and this python's packages (built once, ~12 s)."""
        versions = subprocess.run(
            [self.python, "-c", "import importlib.metadata as m; print(m.version('wagtail'), m.version('django'))"],
            capture_output=True, text=True, check=True).stdout
        digest = hashlib.sha256(versions.encode())
        for path in sorted(SITE_DIR.rglob("*.py")):
            digest.update(str(path.relative_to(SITE_DIR)).encode() + b"\0" + path.read_bytes())
        cached = self.cache_dir / f"migrated-{digest.hexdigest()[:16]}.sqlite3"
        if not cached.exists():
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            # Migrate into a temporary file and rename it: a concurrent start never sees half a database.
            fd, tmp = tempfile.mkstemp(suffix=".sqlite3", dir=self.cache_dir)
            os.close(fd)
            try:
                env = {**self.env, "CMSRAG_WAGTAIL_DB": tmp, "CMSRAG_WAGTAIL_EXTRA_APPS": ""}
                r = subprocess.run([self.python, "manage.py", "migrate", "--noinput", "-v0"], cwd=SITE_DIR, env=env,
                                   capture_output=True, text=True, timeout=600)
                if r.returncode != 0:
                    raise RuntimeError(f"migrate failed:\n{r.stderr[-3000:]}")
                os.replace(tmp, cached)
            finally:
                Path(tmp).unlink(missing_ok=True)
        return cached

    def _point_site_at_home_url(self) -> None:
        """Make the default Site answer for `home_url`, so `html_url`s are links a browser can follow."""
        parts = urlsplit(self.home_url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        with sqlite3.connect(self.db) as conn:
            conn.execute("UPDATE wagtailcore_site SET hostname = ?, port = ?, site_name = ? WHERE is_default_site = 1",
                         (parts.hostname, port, "cmsrag test site"))
        conn.close()

    def _ready(self) -> bool:
        try:
            return requests.get(f"{self.base_url}/api/v2/pages/?limit=1", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def _tail(self) -> str:
        path = self.folder / "logs" / "runserver.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else "(no log)"
