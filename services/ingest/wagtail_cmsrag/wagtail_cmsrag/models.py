"""Webhooks not delivered yet (`pending`) or given up on (`failed`): rows an operator can query and replay.

A row keeps the exact body and its `webhook_id`, so a retry is the same event to the receiver (which answers a
duplicate with 200). `cmsrag_retry` sends the due ones; a successful send sends a few more right away.
"""

from django.db import models
from django.utils import timezone


class PendingWebhook(models.Model):
    PENDING = "pending"
    FAILED = "failed"

    webhook_id = models.CharField(max_length=200, unique=True)
    event = models.CharField(max_length=16)
    page_id = models.CharField(max_length=20, db_index=True)
    body = models.TextField()  # the JSON sent, byte for byte (ASCII)
    status = models.CharField(max_length=8, choices=[(PENDING, "pending"), (FAILED, "failed")], default=PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("id",)
        indexes = (models.Index(fields=("status", "next_attempt_at"), name="cmsrag_pending_due"),)

    def __str__(self) -> str:
        return f"{self.event} {self.page_id} ({self.status}, {self.attempts} attempts)"
