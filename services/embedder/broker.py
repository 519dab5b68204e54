"""The dramatiq broker, built explicitly from settings (dramatiq would otherwise connect to 127.0.0.1 silently).

Production and CI: RabbitMQ with publisher confirms on, durable queues and persistent messages (dramatiq's
defaults for the last two). Without `RABBITMQ_URL`: dramatiq's in-memory `StubBroker` for the single-process
dev mode, announced loudly, because messages there die with the process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import Retries

from shared.errors import TransientError
from shared.logs import get_logger

if TYPE_CHECKING:
    from shared.settings import Settings

log = get_logger(__name__)


def queue_names(settings: Settings) -> tuple[str, str]:
    """(documents queue for webhooks and single requests, backfill queue) — separate so backfill never delays edits."""
    return f"{settings.queue_prefix}.documents", f"{settings.queue_prefix}.backfill"


def make_broker(settings: Settings, *, connect_now: bool = True) -> dramatiq.Broker:
    if settings.rabbitmq_url:
        # Connection tuning (heartbeat, connection_attempts…) goes in the URL's query string, as pika reads it.
        rabbit = RabbitmqBroker(url=settings.rabbitmq_url, confirm_delivery=True)
        broker: dramatiq.Broker = rabbit
        try:
            if connect_now:  # a wrong URL should fail a worker at start; the receiver starts anyway and says 503
                rabbit.connection  # noqa: B018
        except Exception as exc:
            raise TransientError(f"cannot connect to RabbitMQ at {_redact(settings.rabbitmq_url)}: {exc}",
                                 stage="queue") from exc
        log.info("broker_connected", broker="rabbitmq", url=_redact(settings.rabbitmq_url), confirms=True)
    else:
        broker = StubBroker()
        broker.emit_after("process_boot")
        log.warning("dev_mode_in_memory_broker",
                    detail="RABBITMQ_URL is not set: using an in-memory queue with in-process workers; "
                           "queued work is lost if this process exits. Set RABBITMQ_URL for production.")
    retries = next(m for m in broker.middleware if isinstance(m, Retries))
    retries.max_retries = settings.max_retries
    dramatiq.set_broker(broker)
    return broker


def _redact(url: str) -> str:
    """amqp://user:secret@host → amqp://user:***@host, for logs and errors."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"
