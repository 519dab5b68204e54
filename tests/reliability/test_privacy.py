"""Scenario 6: nothing private reaches the index, an answer, a citation or the answer cache, and an unpublished
post leaves within the freshness goal.

The whole path is real: signed webhooks → the receiver under gunicorn → RabbitMQ → `cmsrag worker` fetching from a
CMS that answers in WordPress's recorded REST shapes → Postgres; visitors ask the API under gunicorn (2 workers).
Private posts come in both shapes a site can produce: what WordPress answers an anonymous visitor (401
`rest_forbidden`) and what a leaky plugin or cache in front of it might (200 with the post's full text but a
status or password flag that says it is not public). Every one holds a canary word, and so do the questions.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import requests

from bench.common import gunicorn
from tests.conftest import delete_queues
from tests.fakes.cms_replay import ReplayServer, Reply
from tests.reliability.conftest import scaled
from tests.reliability.services import (
    NOT_PUBLIC,
    count,
    environment,
    post_key,
    post_link,
    send_webhook,
    sse_events,
    wait_for,
    wordpress_site,
    worker,
    wp_post,
)

# docs/benchmarks.md: CMS save → searchable p99 ≤ 3 s. Leaving the index is held to the same goal.
FRESHNESS_GOAL_S = 3.0
TOPIC = "Descaling the kettle: fill it with vinegar, wait an hour, rinse twice and boil fresh water."


def hidden_posts(canary: str) -> dict[int, Reply]:
    """Post id → the CMS's answer to an anonymous fetch, for every way a post can be not public."""
    text = f"<h2>Secret plans</h2><p>{TOPIC} The {canary} project launches soon; {canary} is confidential.</p>"
    return {
        101: NOT_PUBLIC,  # draft, as WordPress answers it
        102: NOT_PUBLIC,  # private
        103: NOT_PUBLIC,  # scheduled (future)
        104: wp_post(104, f"Protected {canary}", text, protected=True),  # password-protected, content leaked
        105: wp_post(105, f"Draft {canary}", text, status="draft"),  # a plugin serving drafts
        106: wp_post(106, f"Private {canary}", text, status="private"),
        107: wp_post(107, f"Scheduled {canary}", text, status="future"),
    }


@pytest.fixture
def stack(pg_url: str, rabbitmq_url: str, db: Any, tmp_path: Path) -> Iterator[tuple[ReplayServer, str, str]]:
    """(the CMS, the receiver's URL, the API's URL) with a worker behind them."""
    prefix = f"rel6{uuid.uuid4().hex[:8]}"
    with contextlib.ExitStack() as stack:
        cms = stack.enter_context(ReplayServer())
        env = environment(pg_url, [wordpress_site(cms.url)], RABBITMQ_URL=rabbitmq_url, CMSRAG_QUEUE_PREFIX=prefix,
                          CMSRAG_MIN_BACKOFF_MS="100", CMSRAG_MAX_BACKOFF_MS="1000")
        stack.callback(delete_queues, rabbitmq_url, prefix)
        stack.enter_context(worker(env, tmp_path))
        receiver = stack.enter_context(gunicorn("services.ingest.wsgi:app", env, workers=1, threads=4))
        api = stack.enter_context(gunicorn("services.api.wsgi:app", env, workers=2, threads=4))
        yield cms, receiver, api


def everything_a_visitor_sees(http: requests.Session, api: str, question: str) -> str:
    """Search results, the answer, and both streams for `question`, as one text to search for what must not be
    there (the search response's echo of the query is left out: the canary is in the question)."""
    found = http.post(f"{api}/v1/search", json={"query": question, "k": 50}, timeout=30).json()["results"]
    seen = [json.dumps(found), http.post(f"{api}/v1/ask", json={"question": question}, timeout=30).text,
            http.post(f"{api}/v1/ask/stream", json={"question": question}, timeout=30).text,
            http.get(f"{api}/v1/ask/stream", params={"q": question}, timeout=30).text]
    for event, data in sse_events(seen[2]) + sse_events(seen[3]):
        assert event != "error", data
    return "\n".join(seen)


def cited_links(http: requests.Session, api: str, question: str) -> set[str]:
    body = http.post(f"{api}/v1/ask", json={"question": question}, timeout=30).json()
    return {c["url"].split("#")[0] for c in body["citations"]}


def out_of_the_index(pg_url: str, post_id: int) -> bool:
    return count(pg_url, "SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.document_id "
                         "WHERE d.site = 'blog' AND d.source_id = %s", (f"posts:{post_id}",)) == 0


def test_private_posts_never_reach_the_index_answers_or_cache_and_unpublished_ones_leave_in_time(
        stack: tuple[ReplayServer, str, str], pg_url: str, scenario: Any) -> None:
    """6 privacy canary"""
    cms, receiver, api = stack
    canary, gone_canary = f"canary{uuid.uuid4().hex[:8]}", f"retired{uuid.uuid4().hex[:8]}"
    public = list(range(1, 1 + scaled(4, 20)))
    unpublish = public[: scaled(2, 10)]
    for pid in public:
        extra = f" The {gone_canary} edition number {pid} is on sale." if pid in unpublish else ""
        cms.add(post_key(pid), wp_post(pid, f"Kettle care {pid}", f"<h2>Care</h2><p>{TOPIC}{extra}</p>"))
    hidden = hidden_posts(canary)
    for pid, reply in hidden.items():
        cms.add(post_key(pid), reply)
    http = requests.Session()
    for pid in [*public, *hidden]:
        assert send_webhook(http, receiver, "updated", f"posts:{pid}").status_code == 202
    wait_for(lambda: count(pg_url, "SELECT count(*) FROM pending") == 0, 60, "the worker to drain the queue")

    indexed = count(pg_url, "SELECT count(*) FROM documents WHERE status = 'indexed'")
    assert indexed == len(public), "every public post is indexed (so the pipeline works and the canary test is fair)"
    assert count(pg_url, "SELECT count(*) FROM failures") == 0, "not public is an outcome, not a failure"
    leaked = count(pg_url, "SELECT count(*) FROM chunks WHERE text ILIKE %s OR title ILIKE %s",
                   (f"%{canary}%", f"%{canary}%"))
    assert leaked == 0
    questions = [canary, f"What is the {canary} project?", "When does the secret project launch?",
                 "How do I descale the kettle with vinegar?"]
    for question in questions:
        assert canary not in everything_a_visitor_sees(http, api, question).lower()
        assert cited_links(http, api, question) <= {post_link(p) for p in public}
    assert count(pg_url, "SELECT count(*) FROM answer_cache") > 0, "answers were cached, so the check means something"
    assert count(pg_url, "SELECT count(*) FROM answer_cache WHERE response::text ILIKE %s", (f"%{canary}%",)) == 0

    lags = []
    for pid in unpublish:
        question = f"Which {gone_canary} edition number {pid} is on sale?"
        assert post_link(pid) in cited_links(http, api, question), "the post is cited (and cached) before"
        cms.add(post_key(pid), NOT_PUBLIC)
        t0 = time.monotonic()
        assert send_webhook(http, receiver, "unpublished", f"posts:{pid}").status_code == 202
        wait_for(partial(out_of_the_index, pg_url, pid), 30, f"posts:{pid} to leave the index")
        lags.append(time.monotonic() - t0)
        assert post_link(pid) not in everything_a_visitor_sees(http, api, question)
    assert gone_canary not in everything_a_visitor_sees(http, api, f"Which {gone_canary} edition is on sale?")
    assert count(pg_url, "SELECT count(*) FROM answer_cache WHERE response::text ILIKE %s",
                 (f"%{gone_canary}%",)) == 0
    assert count(pg_url, "SELECT count(*) FROM documents WHERE status = 'indexed'") == len(public) - len(unpublish)
    scenario(hidden_posts=len(hidden), leaked_chunks=leaked, unpublished=len(unpublish),
             unpublish_max_s=round(max(lags), 2), unpublish_mean_s=round(sum(lags) / len(lags), 2))
    assert max(lags) <= FRESHNESS_GOAL_S, f"unpublished posts left the index in {json.dumps(lags)} s"
