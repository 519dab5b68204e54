"""PostgreSQL restarted while workers are half-way through replacing documents' chunks.

The restart is timed to land inside the upserts, not before or after them: the test holds a SHARE lock on `chunks`,
so each worker's upsert transaction gets as far as rewriting the document's row and then waits on its
`DELETE FROM chunks` — a transaction with writes made and not committed. A restart (`pg_ctl stop -m fast`, which
rolls back open transactions and drops connections, then start) must leave each document entirely old or
entirely new, and the workers' retries must then finish the job on their own.
"""

from __future__ import annotations

import time

import psycopg

from shared.models import DocRef
from tests.conftest import unavailable
from tests.reliability import convergence
from tests.reliability.conftest import scaled
from tests.reliability.fixtures import *  # noqa: F403
from tests.reliability.harness import wait_for
from tests.reliability.pgnode import PostgresNode

SITE = "blog"
BLOCKED_UPSERTS = ("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                   "AND query LIKE 'DELETE FROM chunks%'")


def checksums(conn: psycopg.Connection, site: str) -> dict[str, str | None]:
    return dict(conn.execute("SELECT source_id, checksum FROM documents WHERE site = %s", (site,)).fetchall())


def test_a_postgres_restart_mid_upsert_leaves_documents_whole_and_the_retry_succeeds(
        make_stack, wordpress, rabbitmq_url, scenario):
    """11 Postgres restarted during an upsert"""
    n = scaled(6, 30)
    node = PostgresNode()
    try:
        node.start()
    except Exception as exc:
        unavailable("a PostgreSQL server of our own", str(exc))
    try:
        url = create_database(node.url(), "cmsrag_restart")  # noqa: F405
        stack = make_stack(rabbitmq_url, DATABASE_URL=url, CMSRAG_WORKER_THREADS="2")
        ids = [wordpress.create() for _ in range(n)]
        stack.workers.start()
        for post_id in ids:
            stack.app.queue.request(DocRef(SITE, f"posts:{post_id}"))
        wait_for(lambda: stack.pending() == 0, 60, "version 1 to be indexed")
        with stack.db.connection() as conn:
            old = checksums(conn, SITE)

        for post_id in ids:
            wordpress.edit(post_id)
        new = {sid: c for sid, (c, _) in convergence.expected(stack.settings, stack.app.embedder, SITE).items()}
        locker = psycopg.connect(url, autocommit=False)
        locker.execute("LOCK TABLE chunks IN SHARE MODE")
        for post_id in ids:
            stack.app.queue.request(DocRef(SITE, f"posts:{post_id}"))
        with psycopg.connect(url, autocommit=True) as watch:
            wait_for(lambda: (watch.execute(BLOCKED_UPSERTS).fetchone() or (0,))[0] >= 2, 60,
                     "two upserts to be under way")
            blocked = (watch.execute(BLOCKED_UPSERTS).fetchone() or (0,))[0]
        t0 = time.monotonic()
        node.stop("fast")
        node.start_again()
        restart_s = round(time.monotonic() - t0, 2)
        locker.close()

        with psycopg.connect(url, autocommit=True) as conn:
            torn_after_restart = convergence.torn_documents(conn, stack.settings, stack.app.embedder, SITE)
            after_restart = checksums(conn, SITE)
        mixed = [sid for sid, c in after_restart.items() if c not in (old[sid], new[sid])]
        wait_for(lambda: stack.pending() == 0, 60, "the workers' retries to finish the upserts")
        with stack.db.connection() as conn:
            report = convergence.compare(conn, stack.settings, stack.app.embedder, SITE)
        retried = sum(w.count("Failed to process message") for w in stack.workers.started)
        scenario(documents=n, upserts_interrupted=blocked, restart_s=restart_s,
                 torn_after_restart=len(torn_after_restart), neither_old_nor_new=len(mixed),
                 failed_attempts_retried=retried, **report.counts())
        assert blocked >= 2 and retried >= blocked, "the interrupted upserts failed and were retried"
        assert torn_after_restart == [] and mixed == []
        assert all(after_restart[sid] == old[sid] for sid in old), "no upsert committed while chunks were locked"
        assert report.converged and report.current == n, report
        assert all(w.alive() for w in stack.workers.started), "the workers rode out the restart"
    finally:
        if "stack" in locals():
            stack.close()  # its workers and pool first: they hold connections to the node
        node.close()
