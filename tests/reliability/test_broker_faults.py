"""Broker faults while signed webhooks arrive: nothing answered 2xx may be lost, nothing lost may be answered 2xx.

Each event announces a different post, so a lost event shows as that post missing from the index (a later event
cannot hide it). The sender behaves as the WordPress plugin and the Wagtail app do: a 3 s timeout, the same
webhook id on every retry, retries until a 2xx or 4xx. No reconcile runs: the webhooks alone must get there.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode, urlsplit

from tests.reliability import convergence
from tests.reliability.conftest import scaled
from tests.reliability.fakecms import WebhookSender
from tests.reliability.fixtures import *  # noqa: F403
from tests.reliability.harness import Faults, receiver, wait_for
from tests.reliability.tcpproxy import TcpProxy

SITE = "blog"
SENDERS = 4


def send_paced(sender: WebhookSender, ids: list[int], seconds: float) -> None:
    """One `published` event per post, spread evenly over `seconds`, from a few threads like several CMS workers."""
    t0 = time.monotonic()

    def one(i: int) -> None:
        time.sleep(max(0.0, t0 + i * seconds / len(ids) - time.monotonic()))
        sender.send("published", ids[i])

    with ThreadPoolExecutor(SENDERS) as pool:
        list(pool.map(one, range(len(ids))))


def settle(stack: Stack, sender: WebhookSender) -> tuple[Counter[int], convergence.Report]:  # noqa: F405
    """Wait for the backlog to drain; the answers every delivery got, and the index compared with the CMS."""
    try:
        wait_for(lambda: stack.pending() == 0, scaled(60, 180), "the backlog to drain")
    except AssertionError:
        with stack.db.connection() as conn:
            stuck = [r[0] for r in conn.execute("SELECT source_id FROM pending ORDER BY 1")]
        history = {d.post_id: d.answers for d in sender.deliveries if f"posts:{d.post_id}" in stuck}
        raise AssertionError(f"{len(stuck)} requests still pending; their deliveries' answers: {history}") from None
    answers = Counter(a for d in sender.deliveries for a in d.answers)
    with stack.db.connection() as conn:
        return answers, convergence.compare(conn, stack.settings, stack.app.embedder, SITE)


def send_under_faults(stack: Stack, env: dict[str, str], ids: list[int], seconds: float,  # noqa: F405
                      faults: Callable[[], None]) -> tuple[WebhookSender, Counter[int], convergence.Report]:
    """A receiver on `env` and the workers up; every event sent while `faults` plays; then `settle`."""
    with receiver(env) as url:
        stack.workers.start()
        sender = WebhookSender(url)
        played = Faults(faults, on_error=sender.stopped.set)
        send_paced(sender, ids, seconds)
        played.check()
        answers, report = settle(stack, sender)
    return sender, answers, report


def through(proxy: TcpProxy, **tuning: float) -> str:
    """The broker's URL via the proxy; pika reads connection tuning from the query string, as an operator sets it
    to notice a dead link within seconds."""
    return f"amqp://guest:guest@127.0.0.1:{proxy.port}/%2F?connection_attempts=1&" + urlencode(tuning)


def test_every_webhook_answered_2xx_while_the_broker_restarts_is_indexed(
        make_stack, wordpress, rabbit_node, scenario):
    """2 broker stopped and started while webhooks arrive"""
    n, seconds, outages = scaled(60, 500), scaled(8.0, 40.0), scaled(1, 4)
    stack = make_stack(rabbit_node.url)
    ids = [wordpress.create() for _ in range(n)]
    down_for: list[float] = []

    def restarts() -> None:
        for _ in range(outages):
            time.sleep(seconds / (outages + 1) / 2)
            t = time.monotonic()
            rabbit_node.stop_app()
            time.sleep(1.5)
            rabbit_node.start_app()
            down_for.append(round(time.monotonic() - t, 1))
            time.sleep(seconds / (outages + 1) / 2)

    sender, answers, report = send_under_faults(stack, stack.env, ids, seconds, restarts)
    unaccepted = [d.webhook_id for d in sender.deliveries if not d.accepted]
    scenario(events=n, outages=len(down_for), down_s=down_for, answered_2xx=sum(v for k, v in answers.items()
             if 200 <= k < 300), answered_503=answers[503], no_answer=answers[0], **report.counts())
    assert len(down_for) == outages
    assert answers[503] > 0, "the outage must have been felt by some senders"
    assert set(answers) <= {202, 503}, f"every event was queued or told to retry, at once: {answers}"
    assert not unaccepted, f"{len(unaccepted)} events never accepted"
    assert report.converged, report
    assert report.current == n, "every accepted event is indexed"


def test_every_publish_through_a_faulty_network_is_confirmed_or_reported(
        make_stack, wordpress, rabbitmq_url, scenario):
    """3 network fault between receiver and broker"""
    n, seconds = scaled(60, 500), scaled(8.0, 40.0)
    upstream = urlsplit(rabbitmq_url)
    with TcpProxy(upstream.hostname or "127.0.0.1", upstream.port or 5672) as proxy:
        stack = make_stack(rabbitmq_url)
        ids = [wordpress.create() for _ in range(n)]
        proxied = through(proxy, heartbeat=2, socket_timeout=2, stack_timeout=4)
        played: list[str] = []

        def network() -> None:
            step = seconds / 5
            for name, fault, hold in (("cut", lambda: proxy.cut(), 0.0),
                                      ("refuse", lambda: proxy.refuse(True), 1.0),
                                      ("stall", lambda: proxy.stall(True), 2.0),
                                      ("delay", lambda: setattr(proxy, "delay", 0.5), 2.0)):
                time.sleep(step * 0.8)
                fault()
                time.sleep(hold)
                proxy.heal()
                played.append(name)

        sender, answers, report = send_under_faults(stack, {**stack.env, "RABBITMQ_URL": proxied}, ids, seconds,
                                                    network)
    unaccepted = [d.webhook_id for d in sender.deliveries if not d.accepted]
    scenario(events=n, faults=played, connections=proxy.connections_made, answered_503=answers[503],
             no_answer=answers[0], duplicates=answers[200], **report.counts())
    assert set(answers) <= {200, 202, 503, 0}, f"an event was refused for good or answered oddly: {answers}"
    assert not unaccepted, f"{len(unaccepted)} events never accepted"
    assert report.converged, report
    assert report.current == n, "sent = indexed"


def test_a_retry_during_a_publish_that_then_fails_is_not_told_it_was_a_duplicate(
        make_stack, wordpress, rabbitmq_url, scenario):
    """3b publish outlasting the sender's timeout, then failing"""
    upstream = urlsplit(rabbitmq_url)
    with TcpProxy(upstream.hostname or "127.0.0.1", upstream.port or 5672) as proxy:
        stack = make_stack(rabbitmq_url)
        post = wordpress.create()
        proxied = through(proxy, heartbeat=1, socket_timeout=1, stack_timeout=2)
        with receiver({**stack.env, "RABBITMQ_URL": proxied}, workers=1) as url:
            stack.workers.start()
            sender = WebhookSender(url)
            # An event through the healthy link first, so the receiver's connection is open and in use; then the
            # link goes silent. The next publish waits for its confirm until pika's heartbeat check gives up on
            # the connection (6 s or more): past the sender's 3 s timeout, and then it fails.
            assert sender.send("published", wordpress.create()).accepted
            proxy.stall(True)
            webhook_id = "wp_outlasting_publish"
            delivering = threading.Thread(target=sender.send, args=("published", post, webhook_id), daemon=True)
            delivering.start()

            def first_publish_over() -> bool:  # it deletes the delivery record when it gives up
                with stack.db.connection() as conn:
                    row = conn.execute("SELECT count(*) FROM webhook_deliveries WHERE webhook_id = %s",
                                       (webhook_id,)).fetchone()
                return not delivering.is_alive() and row is not None and row[0] == 0

            t0 = time.monotonic()  # a receiver that keeps the sender waiting instead: heal after 15 s
            wait_for(lambda: first_publish_over() or time.monotonic() > t0 + 15, 30, "the first publish to end")
            stalled_s = round(time.monotonic() - t0, 1)
            proxy.heal()
            delivering.join(timeout=60)
            try:
                wait_for(lambda: stack.pending() == 0, 5, "the event to be indexed")
                indexed = True
            except AssertionError:
                indexed = False
    delivery = sender.deliveries[-1]
    scenario(answers=delivery.answers, stalled_s=stalled_s, indexed=indexed)
    assert delivery.accepted
    assert indexed, f"answered {delivery.answers}, yet the event is not on the queue: only reconcile can find it"
