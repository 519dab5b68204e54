"""What is waiting, read when Prometheus scrapes a worker: pending documents and the oldest one's age, open
failures, and each queue's depth and consumers.

These are states of Postgres and RabbitMQ that many processes change (the receiver, reconcile, `cmsrag retry`,
every worker), so they are read, not counted: a scrape-time collector always tells the truth, costs two small
queries per scrape, and needs no background thread. Every configured site gets a sample (0 when idle), so an
alert on age or failures never silently reads "no data".

Queue figures come from RabbitMQ over AMQP — a passive `queue.declare` answers both message and consumer counts
for a queue, its delay queue (`.DQ`, retries waiting their backoff) and its dead-letter queue (`.XQ`) — rather
than from the broker's Prometheus plugin: it works on any RabbitMQ (managed ones often disable plugins), with
the same numbers `cmsrag status` prints, under our own queue names, and is tested against the real broker. It
uses a connection of its own: dramatiq's are per thread, and a passive declare of a missing queue closes the
channel it is sent on.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import pika
from dramatiq.common import dq_name, xq_name
from pika.exceptions import AMQPError, ChannelClosedByBroker
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from services.embedder.broker import queue_names
from shared import metrics
from shared.db import Database
from shared.logs import get_logger
from shared.settings import Settings

log = get_logger(__name__)
STATEMENT_TIMEOUT_MS = 2_000  # a scrape must answer even when the database is slow


def gauge(family: metrics.Family) -> GaugeMetricFamily:
    return GaugeMetricFamily(family.name, family.help, labels=family.labels)


class Backlog(Collector):
    """A prometheus_client collector: `collect()` reads the database (and the broker, if any) on every scrape."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings, self.db = settings, db
        self._amqp: Any = None  # pika.BlockingConnection, opened on the first scrape
        self._lock = threading.Lock()  # scrapes may overlap; a pika connection is not thread-safe

    def collect(self) -> Iterator[Metric]:
        up = gauge(metrics.STATE_UP)
        sources = [("database", self._database)]
        if self.settings.rabbitmq_url:
            sources.append(("broker", self._queues))
        for source, read in sources:
            try:
                families = read()
            except Exception as exc:  # say the source is down; never fail the scrape of everything else
                log.warning("metrics_state_unreadable", source=source, error=str(exc) or exc.__class__.__name__)
                up.add_metric([source], 0.0)
                continue
            up.add_metric([source], 1.0)
            yield from families
        yield up

    def _database(self) -> list[Metric]:
        with self.db.connection() as conn, conn.transaction():
            conn.execute(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}")
            pending = {site: (n, age) for site, n, age in conn.execute(
                "SELECT site, count(*), extract(epoch FROM now() - min(first_requested))::float8 FROM pending "
                "GROUP BY site").fetchall()}
            failures = dict(conn.execute(
                "SELECT site, count(*) FROM failures WHERE resolved_at IS NULL GROUP BY site").fetchall())
        count, age, failed = (gauge(metrics.PENDING_DOCUMENTS), gauge(metrics.PENDING_OLDEST_AGE),
                              gauge(metrics.FAILURES_OPEN))
        for site in sorted({s.name for s in self.settings.sites} | set(pending) | set(failures)):
            n, oldest = pending.get(site, (0, 0.0))
            count.add_metric([site], n)
            age.add_metric([site], max(0.0, oldest))
            failed.add_metric([site], failures.get(site, 0))
        return [count, age, failed]

    def _queues(self) -> list[Metric]:
        messages, consumers = gauge(metrics.QUEUE_MESSAGES), gauge(metrics.QUEUE_CONSUMERS)
        with self._lock:
            for queue in queue_names(self.settings):
                for state, name in (("ready", queue), ("delayed", dq_name(queue)), ("dead", xq_name(queue))):
                    declared = self._declare(name)
                    if declared is None:  # not declared yet: no worker or producer has used it
                        continue
                    messages.add_metric([queue, state], declared.message_count)
                    if state == "ready":
                        consumers.add_metric([queue], declared.consumer_count)
        return [messages, consumers]

    def _declare(self, name: str) -> Any:
        """The passive declare's answer for queue `name`, None if it does not exist; reconnects once."""
        for attempt in (1, 2):
            try:
                if self._amqp is None or not self._amqp.is_open:
                    assert self.settings.rabbitmq_url is not None
                    params = pika.URLParameters(self.settings.rabbitmq_url)
                    params.socket_timeout, params.blocked_connection_timeout = 5, 5
                    self._amqp = pika.BlockingConnection(params)
                channel = self._amqp.channel()
                try:
                    return channel.queue_declare(queue=name, passive=True).method
                finally:
                    if channel.is_open:
                        channel.close()
            except ChannelClosedByBroker as exc:
                if exc.reply_code == 404:
                    return None
                raise
            except AMQPError:
                self.close()
                if attempt == 2:
                    raise
        return None

    def close(self) -> None:
        if self._amqp is not None and self._amqp.is_open:
            with contextlib.suppress(AMQPError):
                self._amqp.close()
        self._amqp = None
