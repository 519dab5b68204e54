"""A WordPress the test writes to, served over real HTTP, and a sender that delivers its webhooks as the plugin does.

`FakeWordPress` keeps posts with numbered versions and answers the `wp/v2` routes the worker and reconcile call
(`/wp-json/wp/v2/posts/<id>` and the paged listing) through `ReplayServer`, re-scripting them on every change,
so the CMS's truth is whatever the test last did: an edit, an unpublish (401 as WordPress answers a visitor), a
delete (404). Every version's text differs in every section, so chunks of two versions can never pass for one.

`WebhookSender` signs with Standard Webhooks headers, keeps the webhook id across retries and retries what was
not a 2xx or 4xx, as the WordPress plugin's retry queue does; it records every answer for the pass criteria.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests

from shared.signing import sign
from tests.fakes.cms_replay import ReplayServer, Reply

SECRET = "chaos-webhook-secret-0123456789"
PER_PAGE = 100  # WordPressSource's page size
WORDS = ["kettle", "teapot", "descale", "filter", "boiler", "valve", "gasket", "spout", "lid", "handle", "element",
         "thermostat", "limescale", "vinegar", "citric", "warranty", "manual", "socket", "cable", "switch"]
LISTING = "/wp-json/wp/v2/posts?_fields=id,modified_gmt,type&order=asc&orderby=id&page={page}&per_page=100" \
          "&status=publish"


@dataclass
class Post:
    id: int
    version: int = 1
    status: str = "publish"  # publish | draft | deleted
    modified: datetime = field(default_factory=lambda: datetime.now(UTC))
    modified_at: dict[int, datetime] = field(default_factory=dict)  # each version's modified time


def body_html(post_id: int, version: int, sections: int) -> str:
    rng = random.Random(post_id * 100_003 + version)
    parts = []
    for s in range(sections):
        words = " ".join(rng.choice(WORDS) for _ in range(40))
        parts.append(f'<h2 id="s{s}">Part {s}</h2><p>Post {post_id} version {version} part {s}: {words}.</p>')
    return "".join(parts)


class FakeWordPress:
    """Posts 1, 2, … on `server.url`; `site()` is its entry for `CMSRAG_SITES`."""

    def __init__(self, sections: int = 3) -> None:
        self.server = ReplayServer()
        self.sections = sections
        self.posts: dict[int, Post] = {}
        self._ids = itertools.count(1)
        self._pages_served = 1
        self._lock = threading.Lock()
        self._render_listing()

    @property
    def url(self) -> str:
        return self.server.url

    def site(self, name: str = "blog") -> dict[str, Any]:
        return {"name": name, "kind": "wordpress", "url": self.url, "webhook_secret": SECRET,
                "post_types": ["posts"]}

    # -- what an editor does -------------------------------------------------------------------------------
    def create(self, at: datetime | None = None) -> int:
        """A published post, modified `at` (default now)."""
        with self._lock:
            post = Post(next(self._ids))
            self.posts[post.id] = post
            self._changed(post, at)
        return post.id

    def edit(self, post_id: int) -> None:
        with self._lock:
            post = self.posts[post_id]
            post.version += 1
            self._changed(post)

    def resave(self, post_id: int) -> None:
        """Save without changing anything: WordPress still bumps `modified_gmt`."""
        with self._lock:
            self._changed(self.posts[post_id])

    def answer_once(self, post_id: int, *, version: int | None = None, delay: float = 0.0) -> None:
        """The next fetch of the post gets `version` as it was (a lagging replica or cache), `delay` seconds late;
        later fetches get the current state again."""
        with self._lock:
            post = self.posts[post_id]
            old = Post(post.id, version or post.version, post.status, post.modified_at[version or post.version])
            once = dataclasses.replace(self._answer(old), delay=delay)
            self.server.add(f"/wp-json/wp/v2/posts/{post.id}", once, self._answer(post))

    def unpublish(self, post_id: int) -> None:
        self._set_status(post_id, "draft")

    def publish(self, post_id: int) -> None:
        self._set_status(post_id, "publish")

    def delete(self, post_id: int) -> None:
        self._set_status(post_id, "deleted")

    def public_ids(self) -> list[int]:
        return sorted(p.id for p in self.posts.values() if p.status == "publish")

    def close(self) -> None:
        self.server.close()

    # -- what the API answers ------------------------------------------------------------------------------
    def _set_status(self, post_id: int, status: str) -> None:
        with self._lock:
            post = self.posts[post_id]
            post.status = status
            self._changed(post)

    def _changed(self, post: Post, at: datetime | None = None) -> None:
        post.modified = (at or max(datetime.now(UTC), post.modified)).replace(microsecond=0)  # WordPress: seconds
        post.modified_at[post.version] = post.modified
        self.server.add(f"/wp-json/wp/v2/posts/{post.id}", self._answer(post))
        self._render_listing()

    def _answer(self, post: Post) -> Reply:
        if post.status == "deleted":
            return Reply.json({"code": "rest_post_invalid_id", "message": "Invalid post ID.",
                               "data": {"status": 404}}, 404)
        if post.status != "publish":
            return Reply.json({"code": "rest_forbidden", "message": "Sorry, you are not allowed to do that.",
                               "data": {"status": 401}}, 401)
        stamp = post.modified.strftime("%Y-%m-%dT%H:%M:%S")
        return Reply.json({
            "id": post.id, "date_gmt": stamp, "modified_gmt": stamp, "status": "publish", "type": "post",
            "link": f"https://blog.example/p/{post.id}/", "title": {"rendered": f"Post {post.id}"},
            "content": {"rendered": body_html(post.id, post.version, self.sections), "protected": False}})

    def _render_listing(self) -> None:
        public = [p for p in sorted(self.posts.values(), key=lambda p: p.id) if p.status == "publish"]
        pages = max(1, -(-len(public) // PER_PAGE))
        headers = {"X-WP-Total": str(len(public)), "X-WP-TotalPages": str(-(-len(public) // PER_PAGE))}
        for page in range(1, pages + 1):
            items = [{"id": p.id, "modified_gmt": p.modified.strftime("%Y-%m-%dT%H:%M:%S"), "type": "post"}
                     for p in public[(page - 1) * PER_PAGE:page * PER_PAGE]]
            self.server.add(LISTING.format(page=page), Reply.json(items, headers=headers))
        for page in range(pages + 1, self._pages_served + 1):
            self.server.add(LISTING.format(page=page), Reply.json(
                {"code": "rest_post_invalid_page_number", "data": {"status": 400}}, 400))
        self._pages_served = max(self._pages_served, pages)


@dataclass
class Delivery:
    """One event and every answer it got, in order (0 for no answer: refused, reset, timed out)."""

    event: str
    post_id: int
    webhook_id: str
    answers: list[int] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return bool(self.answers) and 200 <= self.answers[-1] < 300


class WebhookSender:
    """Delivers events to `receiver_url` for site `site`, retrying until accepted or `give_up_after` seconds."""

    def __init__(self, receiver_url: str, site: str = "blog", *, retry_every: float = 0.3,
                 give_up_after: float = 60.0, timeout: float = 3.0) -> None:
        """`timeout` per attempt: 3 s, as both senders (the WordPress plugin, the Wagtail app) use."""
        self.url = f"{receiver_url}/webhooks/wordpress/{site}"
        self.retry_every = retry_every
        self.give_up_after = give_up_after
        self.timeout = timeout
        self.deliveries: list[Delivery] = []
        self.stopped = threading.Event()  # set: every send gives up after its current attempt
        self._local = threading.local()

    def send(self, event: str, post_id: int, webhook_id: str | None = None) -> Delivery:
        delivery = Delivery(event, post_id, webhook_id or f"wp_{uuid.uuid4()}")
        self.deliveries.append(delivery)
        deadline = time.monotonic() + self.give_up_after
        raw = json.dumps({"event": event, "id": f"posts:{post_id}", "type": "post"}).encode()
        while True:
            headers = {"Content-Type": "application/json", **sign([SECRET], delivery.webhook_id, raw)}
            try:
                status = self._session().post(self.url, data=raw, headers=headers, timeout=self.timeout).status_code
            except requests.RequestException:
                status = 0
            delivery.answers.append(status)
            if 200 <= status < 500 or time.monotonic() > deadline or self.stopped.is_set():
                return delivery
            time.sleep(self.retry_every)

    def _session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        session: requests.Session = self._local.session
        return session
