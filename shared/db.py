"""Database access: one connection pool per process, with pgvector types registered on every connection.

`database_url(settings)` resolves the embedded default; `Database` wraps a psycopg pool. Statements are
written by hand in the module of the stage that owns them (store, embed, failures): there is no ORM.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import psycopg
from pgvector.psycopg import register_vector
from psycopg_pool import ConnectionPool

from shared.errors import TransientError

if TYPE_CHECKING:
    from shared.settings import Settings


def database_url(settings: Settings) -> str:
    """`DATABASE_URL` if set, else the embedded server's URI (started on demand)."""
    if settings.database_url:
        return settings.database_url
    from shared.pgembedded import embedded_url

    return embedded_url(settings.data_dir)


_vector_ready: weakref.WeakSet[psycopg.Connection[Any]] = weakref.WeakSet()


def _register_vector(conn: psycopg.Connection[Any]) -> None:
    """Teach this connection pgvector's types, once. Before `cmsrag migrate` creates the extension this
    fails quietly and is tried again on the connection's next use, so a pool opened before migrating
    still ends up with working vector columns."""
    if conn in _vector_ready:
        return
    with contextlib.suppress(psycopg.ProgrammingError):
        register_vector(conn)
        _vector_ready.add(conn)


class Database:
    """A small pool owner. `connection()` hands out a connection; use `with conn.transaction():` for atomic work."""

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 8) -> None:
        self.url = url
        self.pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            url, min_size=min_size, max_size=max_size, configure=_register_vector, open=False,
            kwargs={"autocommit": True}, name="cmsrag",
            # A connection is tested as it is handed out: after a Postgres restart every pooled connection is
            # dead, and without this each would fail one request before the pool noticed.
            check=ConnectionPool.check_connection,
        )
        self._opened = False

    def open(self, timeout: float = 15.0) -> Database:
        if not self._opened:
            try:
                self.pool.open(wait=True, timeout=timeout)
            except psycopg.OperationalError as exc:
                raise TransientError(f"cannot connect to the database: {exc}", stage="store") from exc
            except Exception as exc:  # psycopg_pool.PoolTimeout
                raise TransientError(f"cannot connect to the database: {exc}", stage="store") from exc
            self._opened = True
        return self

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        self.open()
        with self.pool.connection() as conn:
            _register_vector(conn)
            yield conn

    def now(self) -> datetime:
        """The database's clock: one clock for every worker, so 'which fetch came later' is well defined."""
        with self.connection() as conn:
            row = conn.execute("SELECT clock_timestamp()").fetchone()
            assert row is not None
            return row[0]  # type: ignore[no-any-return,unused-ignore]

    def close(self) -> None:
        if self._opened:
            self.pool.close()
            self._opened = False
