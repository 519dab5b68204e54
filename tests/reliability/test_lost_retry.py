"""A retry whose publish fails: dramatiq then acks the original and the work is gone (its PR #545).

The failure is real, not simulated in our code: a RabbitMQ policy on the node of our own makes the delay queue
refuse every publish (`max-length 0`, `reject-publish`), so the broker nacks the worker's retry, dramatiq gives up
after its attempts, logs, and acks the message it was retrying. Our net is `pending` plus `cmsrag reconcile`.
"""

from __future__ import annotations

import json
import re

from shared.models import DocRef
from tests.fakes.cms_replay import Reply
from tests.reliability import convergence
from tests.reliability.fixtures import *  # noqa: F403
from tests.reliability.harness import cmsrag, wait_for

SITE = "blog"
DROPPED = "Unexpected failure in after_process_message"  # dramatiq's log line when the retry's publish failed


def test_reconcile_re_enqueues_a_document_whose_retry_was_dropped(make_stack, wordpress, rabbit_node, scenario):
    """9 a retry whose publish fails"""
    stack = make_stack(rabbit_node.url)
    post = wordpress.create()
    ref = DocRef(SITE, f"posts:{post}")
    worker = stack.workers.start()
    stack.app.queue.request(ref)
    wait_for(lambda: stack.pending() == 0, 30, "version 1 to be indexed")

    delay_queue = f"{stack.settings.queue_prefix}.documents.DQ"
    rabbit_node.ctl("set_policy", "--apply-to", "queues", "chaos-refuse-retries", f"^{re.escape(delay_queue)}$",
                    json.dumps({"max-length": 0, "overflow": "reject-publish"}))
    try:
        wordpress.edit(post)
        key = f"/wp-json/wp/v2/posts/{post}"
        wordpress.server.add(key, Reply(503, b"busy", {"Content-Type": "text/html"}), wordpress.server.recording(key))
        stack.app.queue.request(ref)
        wait_for(lambda: DROPPED in worker.log.read_text(errors="replace"), 30, "the retry's publish to fail")
    finally:
        rabbit_node.ctl("clear_policy", "chaos-refuse-retries")
    queued = rabbit_node.queue_depth(f"{stack.settings.queue_prefix}.documents") + rabbit_node.queue_depth(delay_queue)
    with stack.db.connection() as conn:
        before = convergence.compare(conn, stack.settings, stack.app.embedder, SITE)
        # `reconcile` re-sends requests pending for longer than STUCK_AFTER (10 min): let that time pass
        conn.execute("UPDATE pending SET last_requested = last_requested - interval '11 minutes'")

    run = cmsrag(stack.env, "reconcile", SITE, "--json")
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout.strip().splitlines()[-1])
    wait_for(lambda: stack.pending() == 0, 30, "the re-sent request to be indexed")
    with stack.db.connection() as conn:
        after = convergence.compare(conn, stack.settings, stack.app.embedder, SITE)
    scenario(dropped_messages=1, left_on_queue=queued, stale_before=len(before.stale), changed=found["changed"],
             stuck_requests=found["stuck_requests"], **after.counts())
    assert queued == 0 and before.stale == [ref.source_id], "the retry was lost: nothing queued, the index behind"
    assert found["stuck_requests"] == 1 and found["changed"] == 1, found
    assert after.converged and after.current == 1, after
