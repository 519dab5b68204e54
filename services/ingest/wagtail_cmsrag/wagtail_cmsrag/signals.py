"""Wagtail's page signals, turned into recorded `Change`s (sent after the transaction commits).

- `page_published` → `published` the first time a page goes live (`first_published_at == last_published_at`,
  which Wagtail sets from one clock reading), `updated` afterwards, also when a page that was unpublished is
  published again. Wagtail also sends `page_published` when a publish is *scheduled* for later and the page
  is not live: that sends nothing (`publish_scheduled` sends the signal again when the page goes live).
- `page_unpublished` → `unpublished`.
- `pre_delete` on `Page` → `deleted`, with the page's URL and the ids of its descendants taken while the rows still
  exist. Wagtail unpublishes every live page of a deleted subtree first (one `page_unpublished` each), and Django
  sends `pre_delete` for each page: `events.coalesce` folds all that into one `deleted` event for the root.

Handlers never raise: a failure to record is logged, and the editor's action goes on.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db.models.signals import pre_delete
from django.utils import timezone
from wagtail.models import Page
from wagtail.signals import page_published, page_unpublished

from . import batching
from .events import Change, iso_utc

logger = logging.getLogger("wagtail_cmsrag")


def connect() -> None:
    page_published.connect(on_page_published, dispatch_uid="wagtail_cmsrag.published")
    page_unpublished.connect(on_page_unpublished, dispatch_uid="wagtail_cmsrag.unpublished")
    pre_delete.connect(on_page_pre_delete, sender=Page, dispatch_uid="wagtail_cmsrag.pre_delete")


def on_page_published(sender: Any, instance: Any, **kwargs: Any) -> None:
    try:
        if not instance.live:
            return  # scheduled for later (go_live_at in the future): not public yet
        first, last = instance.first_published_at, instance.last_published_at
        event = "published" if first is not None and first == last else "updated"
        _record(Change(event, instance.pk, _type(instance), _url(instance), iso_utc(last or timezone.now())),
                instance)
    except Exception:
        logger.exception("cmsrag_record_failed signal=page_published page_id=%s", getattr(instance, "pk", None))


def on_page_unpublished(sender: Any, instance: Any, **kwargs: Any) -> None:
    try:
        _record(Change("unpublished", instance.pk, _type(instance), _url(instance), iso_utc(timezone.now())),
                instance)
    except Exception:
        logger.exception("cmsrag_record_failed signal=page_unpublished page_id=%s", getattr(instance, "pk", None))


def on_page_pre_delete(sender: Any, instance: Any, **kwargs: Any) -> None:
    try:
        using = instance._state.db or "default"
        batch = batching.current(using)
        if batch is not None and batch.removes(instance.pk):
            # Already listed by an ancestor's deletion in this transaction: skip the queries.
            _record(Change("deleted", instance.pk), instance)
            return
        removed = frozenset(instance.get_descendants().using(using).values_list("pk", flat=True))
        _record(Change("deleted", instance.pk, _type(instance), _url(instance), iso_utc(timezone.now()), removed),
                instance)
    except Exception:
        logger.exception("cmsrag_record_failed signal=pre_delete page_id=%s", getattr(instance, "pk", None))


def _record(change: Change, instance: Any) -> None:
    batching.record(change, instance._state.db or "default")


def _type(page: Any) -> str | None:
    model = page.specific_class  # None when the page's model no longer exists
    return model._meta.label if model is not None else None


def _url(page: Any) -> str | None:
    try:
        return page.get_full_url()  # None for a page outside every Site
    except Exception:
        return None
