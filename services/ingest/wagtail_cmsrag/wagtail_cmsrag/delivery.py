"""Delivering webhooks right after a commit, and later from the retry queue (`PendingWebhook` rows).

- New events are sent one by one. The first answer meaning "receiver down" (no answer, 429, 502, 503, 504) ends the
  round: that event and the ones not tried yet become pending rows, so an editor waits for at most one timeout.
  For `min_backoff` seconds after that, this process queues new events without trying (a page unpublished with
  its 200 descendants while the receiver hangs would otherwise cost 200 timeouts).
- A definitive answer (400/401/404/413/415/422) is logged and kept as a `failed` row, never retried.
- After a successful send, up to `retry_on_success` pending rows go out at once: the receiver is evidently back.
- `retry_pending` (the `cmsrag_retry` command, run by cron) sends the due rows, oldest first; each failure pushes
  its row back exponentially (a Retry-After is honoured as a floor) until `max_attempts` marks it failed.

Two processes may send the same row at once: its webhook id is the same, so the receiver answers "duplicate".
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from . import conf
from .events import Change, bodies
from .models import PendingWebhook
from .sender import Outcome, Verdict, post

logger = logging.getLogger("wagtail_cmsrag")
Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Message:
    webhook_id: str
    event: str
    page_id: str
    body: bytes


def messages_for(changes: Sequence[Change]) -> list[Message]:
    """One message per body, each with a webhook id of its own (kept by every retry)."""
    return [Message(f"wt_{uuid.uuid4().hex}", c.event, str(c.page_id), body) for c in changes for body in bodies(c)]


class Pause:
    """After the receiver was found down, this process stops trying for a while and queues instead."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._until = 0.0
        self._lock = threading.Lock()

    def active(self) -> bool:
        with self._lock:
            return self._clock() < self._until

    def start(self, seconds: float) -> None:
        with self._lock:
            self._until = self._clock() + seconds


pause = Pause()


def deliver(changes: Sequence[Change], *, now: Clock = timezone.now) -> None:
    """Send what a committed transaction changed; keep what could not be delivered as rows."""
    config, problems = conf.read(settings)
    if problems:
        logger.error("cmsrag_settings_invalid problems=%r", problems)
        for message in messages_for(changes):
            _store(message, PendingWebhook.PENDING, 0, now(), "not sent: the CMSRAG_* settings are invalid")
        return
    if config is None:
        return  # webhooks are off (the system check says so)
    messages = messages_for(changes)
    if pause.active():
        for message in messages:
            _store(message, PendingWebhook.PENDING, 0, now(), "not tried: the receiver was down a moment ago")
        return
    delivered = False
    for i, message in enumerate(messages):
        outcome = post(config, message.webhook_id, message.body)
        _log(outcome, message.webhook_id, message.event, message.page_id, attempt=1)
        if outcome.verdict is Verdict.DELIVERED:
            delivered = True
        elif outcome.verdict is Verdict.GIVE_UP:
            _store(message, PendingWebhook.FAILED, 1, now(), outcome.detail)
        else:
            retry_at = now() + backoff(config, 1, outcome.retry_after)
            _store(message, PendingWebhook.PENDING, 1, retry_at, outcome.detail)
            if outcome.receiver_down:
                pause.start(config.min_backoff)
                for rest in messages[i + 1:]:
                    _store(rest, PendingWebhook.PENDING, 0, retry_at, "not tried: the receiver was down")
                return
    if delivered and config.retry_on_success:
        tried = [m.webhook_id for m in messages]  # a row written just now waits for its backoff
        retry_pending(config, limit=config.retry_on_success, due_only=False, skip=tried, now=now)


def retry_pending(config: conf.Config, *, limit: int = 100, due_only: bool = True, skip: Sequence[str] = (),
                  now: Clock = timezone.now) -> Counter[str]:
    """Send pending rows (due ones, unless `due_only=False`), oldest first; counts per result."""
    counts: Counter[str] = Counter()
    rows = PendingWebhook.objects.filter(status=PendingWebhook.PENDING).exclude(webhook_id__in=skip)
    if due_only:
        rows = rows.filter(next_attempt_at__lte=now())
    for row in list(rows.order_by("id")[:limit]):
        outcome = post(config, row.webhook_id, row.body.encode())
        attempts = row.attempts + 1
        _log(outcome, row.webhook_id, row.event, row.page_id, attempt=attempts)
        same_row = PendingWebhook.objects.filter(pk=row.pk)  # update, never save: a concurrent sender may be done
        if outcome.verdict is Verdict.DELIVERED:
            same_row.delete()
            counts["delivered"] += 1
        elif outcome.verdict is Verdict.GIVE_UP or attempts >= config.max_attempts:
            reason = outcome.detail if outcome.verdict is Verdict.GIVE_UP else \
                f"gave up after {attempts} attempts; last: {outcome.detail}"
            same_row.update(status=PendingWebhook.FAILED, attempts=attempts, last_error=reason[:500])
            logger.error("cmsrag_webhook_failed webhook_id=%s page_id=%s reason=%r", row.webhook_id, row.page_id,
                         reason)
            counts["failed"] += 1
        else:
            same_row.update(attempts=attempts, last_error=outcome.detail[:500],
                            next_attempt_at=now() + backoff(config, attempts, outcome.retry_after))
            counts["rescheduled"] += 1
            if outcome.receiver_down:
                break
    return counts


def backoff(config: conf.Config, attempts: int, retry_after: float | None = None) -> timedelta:
    """Wait before the next attempt: doubling from `min_backoff`, at least Retry-After, at most `max_backoff`."""
    seconds = max(config.min_backoff * 2 ** min(attempts - 1, 30), retry_after or 0.0)
    return timedelta(seconds=min(seconds, config.max_backoff))


def _store(message: Message, status: str, attempts: int, next_attempt_at: datetime, error: str) -> None:
    try:
        PendingWebhook.objects.create(webhook_id=message.webhook_id, event=message.event, page_id=message.page_id,
                                      body=message.body.decode(), status=status, attempts=attempts,
                                      next_attempt_at=next_attempt_at, last_error=error[:500])
    except Exception:  # the database is the last resort: the body in the log is all that is left
        logger.exception("cmsrag_webhook_lost webhook_id=%s body=%s", message.webhook_id, message.body.decode())


def _log(outcome: Outcome, webhook_id: str, event: str, page_id: str, *, attempt: int) -> None:
    if outcome.verdict is Verdict.DELIVERED:
        level = logging.INFO
    elif outcome.verdict is Verdict.GIVE_UP:
        level = logging.ERROR
    else:
        level = logging.WARNING
    logger.log(level, "cmsrag_webhook_%s webhook_id=%s event=%s page_id=%s attempt=%d status=%s detail=%r",
               outcome.verdict.value, webhook_id, event, page_id, attempt, outcome.status, outcome.detail)
