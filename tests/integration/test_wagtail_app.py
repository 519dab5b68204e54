"""The wagtail-cmsrag app inside a real Wagtail 8 site, sending to a real HTTP receiver in this process.

One Wagtail site serves the whole module (`tests/cms/wagtail.py`, the app on its PYTHONPATH). Editors' actions
run in the site's own processes (`WagtailServer.call`/`shell`), which send their webhooks before they exit, so
a test sees every request as soon as the call returns. The receiver checks what cmsrag's receiver checks: the
path, the signature (`shared.signing.verify`, with each of the two configured secrets on its own) and the body
(`services.ingest.events.parse_event`). It can answer any status, hang, or be down. Retry state is read from the
site's SQLite file; "time passes" for a pending row by moving its `next_attempt_at` into the past.

The coalescing rules themselves are pure functions of the app, table-tested at the end without Wagtail.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import sqlite3
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import requests

from services.ingest.events import parse_event
from shared.signing import SignatureError, verify
from tests.cms.wagtail import DEFAULT_PYTHON, PROJECT_ROOT, WagtailServer, find_python
from tests.conftest import unavailable

APP_ROOT = PROJECT_ROOT / "services" / "ingest" / "wagtail_cmsrag"
SITE = "wagtail-test"
NEW_SECRET = "whsec_" + base64.b64encode(b"the new secret, 32 bytes long!!!").decode()
OLD_SECRET = "the old secret, a plain string"
TIMEOUT = 1.0


# -- a receiver that records and verifies -------------------------------------------------------------------

@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    raw: bytes
    at: float

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def body(self) -> dict[str, Any]:
        return dict(json.loads(self.raw))


class Receiver:
    """cmsrag's webhook endpoint as a test double: records every request, answers as told (202 by default)."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.answers: deque[tuple[int, dict[str, str]]] = deque()
        self.hang = 0.0  # seconds to wait before answering
        self.port = 0
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    receiver.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()},
                                                      raw, time.time()))
                    status, headers = receiver.answers.popleft() if receiver.answers else (202, {})
                time.sleep(receiver.hang)
                reply = json.dumps({"status": "queued" if status == 202 else "error"}).encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that gave up waiting (timeout test) closes the socket under the handler

        self._server = Server(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Down: the port refuses connections until `start()` (same port) again."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    @property
    def up(self) -> bool:
        return self._server is not None

    def answer_next(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.answers.append((status, headers or {}))

    def reset(self) -> None:
        with self._lock:
            self.received.clear()
            self.answers.clear()
        self.hang = 0.0
        if not self.up:
            self.start()

    def events(self) -> list[dict[str, Any]]:
        """The bodies received, after checking each request as cmsrag's receiver would."""
        for r in self.received:
            assert r.path == f"/webhooks/wagtail/{SITE}"
            assert r.headers["content-type"] == "application/json"
            assert verify([NEW_SECRET], r.headers, r.raw) == r.webhook_id
            assert verify([OLD_SECRET], r.headers, r.raw) == r.webhook_id
            parse_event("wagtail", SITE, r.body)  # raises InvalidEvent for a body the receiver would refuse
        return [r.body for r in self.received]


# -- fixtures -----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.start()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def site(receiver: Receiver, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WagtailServer]:
    python = find_python()
    if python is None or not Path(python).exists():
        unavailable("Wagtail", f"no Wagtail python at {python or DEFAULT_PYTHON} (run scripts/setup-wagtail-venv.sh)")
    server = WagtailServer(tmp_path_factory.mktemp("wagtail-app"), extra_apps=("wagtail_cmsrag",),
                           pythonpath=(APP_ROOT,),
                           settings={"CMSRAG_RECEIVER_URL": receiver.url, "CMSRAG_SITE": SITE,
                                     "CMSRAG_WEBHOOK_SECRETS": [NEW_SECRET, OLD_SECRET], "CMSRAG_TIMEOUT": TIMEOUT})
    server.start(fresh=True)
    yield server
    server.stop()


@pytest.fixture
def wagtail(site: WagtailServer, receiver: Receiver) -> WagtailServer:
    """The module's site with an empty retry queue, its receiver up and answering 202."""
    receiver.reset()
    with sqlite3.connect(site.db) as conn:
        conn.execute("DELETE FROM wagtail_cmsrag_pendingwebhook")
    conn.close()
    return site


def rows(site: WagtailServer) -> list[dict[str, Any]]:
    with sqlite3.connect(site.db) as conn:
        conn.row_factory = sqlite3.Row
        found = [dict(r) for r in conn.execute("SELECT * FROM wagtail_cmsrag_pendingwebhook ORDER BY id")]
    conn.close()
    return found


def make_due(site: WagtailServer) -> None:
    """Time passes: every pending row is due."""
    with sqlite3.connect(site.db) as conn:
        conn.execute("UPDATE wagtail_cmsrag_pendingwebhook SET next_attempt_at = '2000-01-01 00:00:00'")
    conn.close()


def seconds_until(stored: str) -> float:
    return datetime.fromisoformat(stored).replace(tzinfo=UTC).timestamp() - time.time()


# -- what an editor's action sends --------------------------------------------------------------------------

def test_creating_and_publishing_a_page_sends_one_published_event_with_a_valid_signature(
        wagtail: WagtailServer, receiver: Receiver) -> None:
    page_id = wagtail.create_article("Fresh news", [{"type": "paragraph", "value": "<p>Hello.</p>"}])
    [event] = receiver.events()
    assert event["event"] == "published" and event["id"] == str(page_id)
    assert event["type"] == "app.ArticlePage"
    assert event["url"] == f"{wagtail.base_url}/fresh-news/"
    assert abs(datetime.fromisoformat(event["modified"]).timestamp() - time.time()) < 60
    assert receiver.received[0].webhook_id.startswith("wt_")
    assert rows(wagtail) == []


def test_publishing_an_edit_of_a_live_page_sends_updated(wagtail: WagtailServer, receiver: Receiver) -> None:
    page_id = wagtail.create_article("Edited later", [])
    wagtail.call(("edit", {"page_id": page_id, "intro": "Now with an intro."}))
    assert [(e["event"], e["id"]) for e in receiver.events()] == [("published", str(page_id)),
                                                                  ("updated", str(page_id))]
    assert receiver.received[0].webhook_id != receiver.received[1].webhook_id


def test_unpublishing_sends_unpublished_and_publishing_again_sends_updated(
        wagtail: WagtailServer, receiver: Receiver) -> None:
    page_id = wagtail.create_article("Back and forth", [])
    wagtail.call(("unpublish", {"page_id": page_id}), ("publish", {"page_id": page_id}))
    assert [e["event"] for e in receiver.events()] == ["published", "unpublished", "updated"]


def test_saving_a_draft_revision_sends_nothing(wagtail: WagtailServer, receiver: Receiver) -> None:
    page_id = wagtail.create_article("Draft work", [])
    receiver.reset()
    wagtail.call(("edit", {"page_id": page_id, "publish": False, "intro": "Not ready yet."}),
                 ("create_article", {"title": "Never published", "body": [], "publish": False}))
    assert receiver.events() == []
    assert rows(wagtail) == []


def test_deleting_a_page_with_live_children_sends_one_deleted_event_listing_every_removed_page(
        wagtail: WagtailServer, receiver: Receiver) -> None:
    ids = json.loads(wagtail.shell(
        "import json\nfrom app import testing\n"
        "root = testing.create_article('Section', [])\n"
        "a = testing.create_article('Child A', [], parent_id=root)\n"
        "b = testing.create_article('Child B', [], parent_id=root)\n"
        "draft = testing.create_article('Draft child', [], parent_id=root, publish=False)\n"
        "grandchild = testing.create_note('Grandchild', '<p>deep</p>', parent_id=a)\n"
        "print(json.dumps([root, a, b, draft, grandchild]))\n").strip().splitlines()[-1])
    root, *below = ids
    receiver.reset()
    wagtail.delete(root)
    [event] = receiver.events()  # not one per page, and no `unpublished` for the live ones
    assert (event["event"], event["id"]) == ("deleted", str(root))
    assert sorted(event["ids"], key=int) == [str(i) for i in below]
    assert event["url"] == f"{wagtail.base_url}/section/"


def test_a_rolled_back_transaction_sends_nothing_and_a_rolled_back_savepoint_only_loses_its_own_changes(
        wagtail: WagtailServer, receiver: Receiver) -> None:
    kept, dropped = json.loads(wagtail.shell(
        "import json\nfrom django.db import transaction\nfrom app import testing\n"
        "kept = testing.create_article('Kept', [], publish=False)\n"
        "dropped = testing.create_article('Dropped', [], publish=False)\n"
        "class Undo(Exception): pass\n"
        "try:\n"
        "    with transaction.atomic():\n"
        "        testing.publish(dropped)\n"
        "        raise Undo\n"
        "except Undo: pass\n"
        "with transaction.atomic():\n"
        "    testing.publish(kept)\n"
        "    try:\n"
        "        with transaction.atomic():\n"
        "            testing.delete(kept)\n"
        "            raise Undo\n"
        "    except Undo: pass\n"
        "print(json.dumps([kept, dropped]))\n").strip().splitlines()[-1])
    assert [(e["event"], e["id"]) for e in receiver.events()] == [("published", str(kept))]
    assert requests.get(f"{wagtail.base_url}/api/v2/pages/{kept}/", timeout=5).status_code == 200  # not deleted
    assert requests.get(f"{wagtail.base_url}/api/v2/pages/{dropped}/", timeout=5).status_code == 404  # not live


def test_a_publish_scheduled_for_later_sends_nothing_until_the_page_goes_live(
        wagtail: WagtailServer, receiver: Receiver) -> None:
    page_id = int(wagtail.shell(
        "import datetime\nfrom django.utils import timezone\nfrom app import testing\nfrom wagtail.models import Page\n"
        "page_id = testing.create_article('Tomorrow', [], publish=False)\n"
        "page = Page.objects.get(id=page_id).specific\n"
        "page.go_live_at = timezone.now() + datetime.timedelta(days=1)\n"
        "page.save_revision().publish()  # Wagtail sends page_published here, for a page that is not live\n"
        "assert not Page.objects.get(id=page_id).live\n"
        "print(page_id)\n").strip().splitlines()[-1])
    assert receiver.events() == []
    wagtail.shell("from django.utils import timezone\nfrom wagtail.models import Revision\n"
                  f"Revision.objects.filter(object_id='{page_id}').update(approved_go_live_at=timezone.now())\n")
    wagtail.manage("publish_scheduled")
    assert [(e["event"], e["id"]) for e in receiver.events()] == [("published", str(page_id))]


def test_every_request_is_signed_with_each_secret_during_a_rotation(
        wagtail: WagtailServer, receiver: Receiver) -> None:
    wagtail.create_article("Rotated", [])
    [request] = receiver.received
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    for secret in (NEW_SECRET, OLD_SECRET):
        assert verify([secret], request.headers, request.raw) == request.webhook_id
    with pytest.raises(SignatureError):
        verify(["a secret nobody configured"], request.headers, request.raw)


# -- when cmsrag cannot take it -----------------------------------------------------------------------------

def test_a_publish_while_the_receiver_is_down_leaves_a_pending_webhook(
        wagtail: WagtailServer, receiver: Receiver) -> None:
    receiver.stop()
    page_id = wagtail.create_article("Written while cmsrag is down", [])
    [row] = rows(wagtail)
    assert (row["status"], row["event"], row["page_id"], row["attempts"]) == ("pending", "published", str(page_id), 1)
    assert json.loads(row["body"])["id"] == str(page_id)
    assert "no answer" in row["last_error"]
    assert 20 < seconds_until(row["next_attempt_at"]) <= 30  # CMSRAG_RETRY_MIN_BACKOFF, 30 s by default


def test_cmsrag_retry_delivers_a_due_webhook_with_its_original_id_once_the_receiver_is_back(
        wagtail: WagtailServer, receiver: Receiver) -> None:
    receiver.stop()
    wagtail.create_article("Delivered late", [])
    [row] = rows(wagtail)
    receiver.start()
    assert "delivered=0" in wagtail.manage("cmsrag_retry")  # not due yet: the backoff holds
    assert receiver.received == []
    make_due(wagtail)
    before = int(time.time())
    assert "delivered=1" in wagtail.manage("cmsrag_retry")
    [request] = receiver.received
    assert request.webhook_id == row["webhook_id"]
    assert request.raw == row["body"].encode()
    assert int(request.headers["webhook-timestamp"]) >= before  # signed anew for this attempt
    receiver.events()
    assert rows(wagtail) == []


def test_a_successful_send_also_delivers_what_was_pending(wagtail: WagtailServer, receiver: Receiver) -> None:
    receiver.stop()
    missed = wagtail.create_article("Missed", [])
    [row] = rows(wagtail)
    receiver.start()
    caught = wagtail.create_article("Caught", [])
    assert [e["id"] for e in receiver.events()] == [str(caught), str(missed)]
    assert receiver.received[1].webhook_id == row["webhook_id"]
    assert rows(wagtail) == []


def test_a_503_is_retried_no_sooner_than_its_retry_after(wagtail: WagtailServer, receiver: Receiver) -> None:
    receiver.answer_next(503, {"Retry-After": "120"})
    wagtail.create_article("Queue is full", [])
    assert len(receiver.received) == 1
    [row] = rows(wagtail)
    assert (row["status"], row["attempts"]) == ("pending", 1)
    assert row["last_error"].startswith("HTTP 503")
    assert 110 < seconds_until(row["next_attempt_at"]) <= 120


def test_a_receiver_that_does_not_answer_in_time_costs_one_timeout_and_the_next_changes_are_queued_untried(
        wagtail: WagtailServer, receiver: Receiver) -> None:
    receiver.hang = TIMEOUT + 2
    wagtail.call(*[("create_article", {"title": f"Slow receiver {n}", "body": []}) for n in range(3)])
    assert len(receiver.received) == 1  # one timeout, not three: the next two were not tried
    first, *queued = rows(wagtail)
    assert (first["status"], first["attempts"]) == ("pending", 1) and "timed out" in first["last_error"].lower()
    assert [(r["status"], r["attempts"]) for r in queued] == [("pending", 0)] * 2
    assert all("not tried" in r["last_error"] for r in queued)


def test_a_401_is_logged_and_never_retried(wagtail: WagtailServer, receiver: Receiver) -> None:
    receiver.answer_next(401)
    wagtail.create_article("Wrong secret", [])
    [row] = rows(wagtail)
    assert (row["status"], row["attempts"]) == ("failed", 1)
    make_due(wagtail)
    assert "delivered=0" in wagtail.manage("cmsrag_retry", "--all")
    assert len(receiver.received) == 1
    assert rows(wagtail)[0]["status"] == "failed"


def test_bad_settings_are_reported_by_djangos_system_check_one_line_each(site: WagtailServer) -> None:
    misconfigured = WagtailServer(site.folder, site.port, extra_apps=site.extra_apps, pythonpath=site.pythonpath,
                                  settings={"CMSRAG_RECEIVER_URL": "cmsrag.example.org", "CMSRAG_SITE": SITE,
                                            "CMSRAG_WEBHOOK_SECRETS": NEW_SECRET, "CMSRAG_TIMEOUT": 0})
    with pytest.raises(RuntimeError) as failed:
        misconfigured.manage("check")
    errors = [line for line in str(failed.value).splitlines() if "wagtail_cmsrag.E001" in line]
    assert len(errors) == 3
    assert all(any(name in line for line in errors)
               for name in ("CMSRAG_RECEIVER_URL", "CMSRAG_WEBHOOK_SECRETS", "CMSRAG_TIMEOUT"))


# -- the coalescing rules, without Wagtail ------------------------------------------------------------------

def load_events() -> ModuleType:
    """The app's pure `events` module, loaded from its file (the app itself is not installed in this venv)."""
    path: Path = APP_ROOT / "wagtail_cmsrag" / "events.py"
    spec = importlib.util.spec_from_file_location("wagtail_cmsrag_events", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


events = load_events()
C = events.Change

COALESCE_CASES = [
    ("one publish stays one event",
     [C("published", 1)], [C("published", 1)]),
    ("the last change of a page wins",
     [C("published", 1), C("unpublished", 1)], [C("unpublished", 1)]),
    ("published then updated in one transaction is published",
     [C("published", 1), C("updated", 1)], [C("published", 1)]),
    ("a deletion drops the page's unpublish",
     [C("unpublished", 1), C("deleted", 1)], [C("deleted", 1)]),
    ("a subtree becomes one deletion of its root",
     [C("unpublished", 1), C("unpublished", 2), C("deleted", 3), C("deleted", 2, removed=frozenset({3})),
      C("deleted", 1, removed=frozenset({2, 3}))],
     [C("deleted", 1, removed=frozenset({2, 3}))]),
    ("a descendant recorded without its own subtree is still listed",
     [C("deleted", 1, removed=frozenset({2})), C("deleted", 2, removed=frozenset({4}))],
     [C("deleted", 1, removed=frozenset({2, 4}))]),
    ("unrelated pages keep their own events, in order",
     [C("published", 5), C("deleted", 1, removed=frozenset({2})), C("updated", 7)],
     [C("published", 5), C("deleted", 1, removed=frozenset({2})), C("updated", 7)]),
    ("nothing comes after a deletion",
     [C("deleted", 1), C("published", 1)], [C("deleted", 1)]),
]


@pytest.mark.parametrize(("case", "changes", "expected"), COALESCE_CASES, ids=[c[0] for c in COALESCE_CASES])
def test_coalescing_turns_a_transactions_signals_into_the_events_to_send(
        case: str, changes: list[Any], expected: list[Any]) -> None:
    assert events.coalesce(changes) == expected


def test_a_huge_subtree_deletion_is_split_into_bodies_under_the_size_limit_that_name_every_page() -> None:
    change = C("deleted", 1, url="https://example.org/big/", removed=frozenset(range(2, 20_002)))
    parts = [json.loads(b) for b in events.bodies(change)]
    assert len(parts) > 1
    assert all(len(b) <= events.MAX_BODY_BYTES for b in events.bodies(change))
    assert all(p["event"] == "deleted" and p["id"] == "1" for p in parts)
    assert sorted(int(i) for p in parts for i in p["ids"]) == list(range(2, 20_002))
    for part in parts:
        parse_event("wagtail", SITE, part)
