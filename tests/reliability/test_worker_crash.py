"""Workers that die or are told to stop with documents in flight: the index still ends up exactly the CMS's.

Two `cmsrag worker` processes share the queue; the embedding API answers slowly, so most of a document's time is
spent waiting for its vectors and a signal sent while work is under way lands mid-document.
"""

from __future__ import annotations

import signal
import threading

from shared.models import DocRef
from tests.reliability import convergence
from tests.reliability.conftest import scaled
from tests.reliability.fixtures import *  # noqa: F403
from tests.reliability.harness import Worker, wait_for

SITE = "blog"


def indexed(stack: Stack) -> int:  # noqa: F405
    with stack.db.connection() as conn:
        row = conn.execute("SELECT count(*) FROM documents WHERE status = 'indexed'").fetchone()
    return int(row[0]) if row else 0


def finished_while_stopping(worker: Worker) -> int:
    """Documents the worker indexed after it was told to stop: the jobs it had in flight."""
    events = [e.get("event") for e in worker.events()]
    return events[events.index("worker_stopping"):].count("document_indexed") if "worker_stopping" in events else 0


def request_all(stack: Stack, ids: list[int]) -> None:  # noqa: F405
    for post_id in ids:
        stack.app.queue.request(DocRef(SITE, f"posts:{post_id}"))


def test_a_worker_killed_mid_batch_leaves_every_document_indexed_once(
        make_stack, wordpress, embeddings, rabbitmq_url, scenario):
    """1 kill -9 worker mid-batch"""
    n = scaled(20, 100)
    embeddings.latency = 0.3
    stack = make_stack(rabbitmq_url)
    ids = [wordpress.create() for _ in range(n)]
    victim = stack.workers.start()
    request_all(stack, ids)
    wait_for(lambda: indexed(stack) >= n // 4 and embeddings.in_flight > 0, 60, "a quarter of the documents")
    in_flight, done_at_kill = embeddings.in_flight, indexed(stack)
    victim.kill()  # the only worker: whatever was in flight is its own
    stack.workers.start()  # as a supervisor would restart it
    assert wait_for(lambda: stack.pending() == 0, 120, "the restarted worker to work off the backlog")
    with stack.db.connection() as conn:
        report = convergence.compare(conn, stack.settings, stack.app.embedder, SITE)
    embedded_again = sum(1 for c in embeddings.texts().values() if c > 1)
    scenario(documents=n, indexed_at_kill=done_at_kill, embeddings_in_flight_at_kill=in_flight,
             texts_embedded_again=embedded_again, **report.counts())
    assert report.converged, report
    assert report.current == n
    assert victim.process.returncode == -signal.SIGKILL
    assert embedded_again > 0, "the kill landed mid-embedding: those texts had to be embedded again"


def test_sigterm_lets_a_worker_finish_or_requeue_its_jobs_and_exit_0(
        make_stack, wordpress, embeddings, rabbitmq_url, scenario):
    """10 SIGTERM to workers with jobs in flight"""
    n = scaled(20, 100)
    stack = make_stack(rabbitmq_url)
    ids = [wordpress.create() for _ in range(n)]
    first, second = stack.workers.start(wait=False), stack.workers.start(wait=False)
    first.wait_ready(), second.wait_ready()
    request_all(stack, ids)
    wait_for(lambda: stack.pending() == 0, 60, "version 1 to be indexed")

    # Version 2 of every post, then SIGTERM to both workers while it is being embedded.
    embeddings.latency = 0.25
    for post_id in ids:
        wordpress.edit(post_id)
    torn: set[str] = set()
    sampling = threading.Event()

    def sample() -> None:  # no document may ever be seen with chunks of two versions, not even mid-shutdown
        with stack.db.connection() as conn:
            while not sampling.wait(0.01):
                torn.update(convergence.torn_documents(conn, stack.settings, stack.app.embedder, SITE))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    request_all(stack, ids)
    wait_for(lambda: embeddings.in_flight > 0, 30, "version 2 to be in flight")
    in_flight = embeddings.in_flight
    first.terminate(), second.terminate()  # both at once, as a deploy stops every worker
    codes = [first.stop(), second.stop()]
    finished = sum(finished_while_stopping(w) for w in (first, second))
    left = stack.pending()
    replacement = stack.workers.start()
    assert wait_for(lambda: stack.pending() == 0, 120, "the replacement to finish the requeued jobs")
    sampling.set()
    sampler.join(timeout=30)
    with stack.db.connection() as conn:
        report = convergence.compare(conn, stack.settings, stack.app.embedder, SITE)
    scenario(documents=n, embeddings_in_flight_at_sigterm=in_flight, finished_while_stopping=finished,
             requeued=left, exit_codes=codes, torn_while_running=len(torn), **report.counts())
    assert codes == [0, 0]
    assert finished >= 1, "the jobs in flight at SIGTERM were finished, not dropped"
    assert not torn, f"documents seen with chunks of two versions: {sorted(torn)[:5]}"
    assert report.converged, report
    assert replacement.alive()
