"""`manage.py cmsrag_retry`: send the webhooks that are due for another attempt. Run it from cron every minute.

    * * * * *  cd /srv/site && ./manage.py cmsrag_retry --quiet

Prints what happened (`delivered=… rescheduled=… failed=… pending=…`). `--all` ignores the schedule (e.g. right
after the receiver is back); `--retry-failed` first moves the failed rows back to pending, e.g. once a wrong
secret has been fixed. Exits with an error when the `CMSRAG_*` settings are missing or invalid.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from ... import conf
from ...delivery import retry_pending
from ...models import PendingWebhook


class Command(BaseCommand):
    help = "Send the pending cmsrag webhooks that are due (run it from cron)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--limit", type=int, default=500, help="at most this many rows per run (default 500)")
        parser.add_argument("--all", action="store_true", help="send every pending row, due or not")
        parser.add_argument("--retry-failed", action="store_true",
                            help="first move the failed rows back to pending (their attempts start again)")
        parser.add_argument("--quiet", action="store_true", help="print nothing when nothing was pending")

    def handle(self, *args: Any, **options: Any) -> None:
        config, problems = conf.read(settings)
        if problems:
            raise CommandError("invalid settings:\n  " + "\n  ".join(problems))
        if config is None:
            raise CommandError("CMSRAG_RECEIVER_URL is not set: there is nowhere to send webhooks")
        if options["retry_failed"]:
            PendingWebhook.objects.filter(status=PendingWebhook.FAILED).update(
                status=PendingWebhook.PENDING, attempts=0, last_error="", next_attempt_at=timezone.now())
        counts = retry_pending(config, limit=options["limit"], due_only=not options["all"])
        left = PendingWebhook.objects.filter(status=PendingWebhook.PENDING).count()
        failed = PendingWebhook.objects.filter(status=PendingWebhook.FAILED).count()
        if counts or left or not options["quiet"]:
            self.stdout.write(f"delivered={counts['delivered']} rescheduled={counts['rescheduled']} "
                              f"failed={counts['failed']} pending={left} failed_total={failed}")
