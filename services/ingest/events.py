"""What a webhook body means for the pipeline: validation of the contract in docs/webhooks.md, as a pure function.

The body is never trusted for content: it only names documents. Every event but `deleted` becomes an
"update" (the worker fetches the current public state and decides); `deleted` removes without fetching,
because the document is gone for good and a fetch racing WordPress's `before_delete_post` could still see it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from shared.models import DocRef

EVENTS = frozenset({"published", "updated", "unpublished", "trashed", "restored", "deleted"})
ID_PATTERNS = {
    "wordpress": re.compile(r"^[a-z0-9_-]{1,64}:[1-9][0-9]{0,19}$"),  # <rest_base>:<post id>
    "wagtail": re.compile(r"^[1-9][0-9]{0,19}$"),
}
MAX_IDS = 10_000
OPTIONAL = {"type", "modified", "url", "ids"}


class InvalidEvent(ValueError):
    """Raised when a webhook body does not follow the contract; the message says what is wrong."""


@dataclass(frozen=True)
class WebhookEvent:
    event: str
    refs: tuple[DocRef, ...]
    pipeline_event: str  # "update" or "delete"


def parse_event(kind: str, site: str, body: Any) -> WebhookEvent:
    if not isinstance(body, dict):
        raise InvalidEvent("the body must be a JSON object")
    unknown = set(body) - {"event", "id"} - OPTIONAL
    if unknown:
        raise InvalidEvent(f"unknown fields: {', '.join(sorted(unknown))}")
    event = body.get("event")
    if event not in EVENTS:
        raise InvalidEvent(f"'event' must be one of {', '.join(sorted(EVENTS))}")
    pattern = ID_PATTERNS[kind]
    ids = [body.get("id")]
    if "ids" in body:
        extra = body["ids"]
        if event != "deleted" or not isinstance(extra, list) or len(extra) > MAX_IDS:
            raise InvalidEvent(f"'ids' is a list of at most {MAX_IDS} ids, and only for 'deleted'")
        ids += extra
    for value in ids:
        if not isinstance(value, str) or not pattern.match(value):
            example = "'posts:12'" if kind == "wordpress" else "'12'"
            raise InvalidEvent(f"id {value!r} is not a {kind} document id (e.g. {example})")
    for name in ("type", "modified", "url"):
        if name in body and not (isinstance(body[name], str) and len(body[name]) <= 2000):
            raise InvalidEvent(f"'{name}' must be a string")
    refs = tuple(DocRef(site, str(i)) for i in dict.fromkeys(ids))  # de-duplicated, order kept
    return WebhookEvent(event, refs, "delete" if event == "deleted" else "update")
