"""The WordPress plugin (services/ingest/wordpress/cmsrag-webhooks) in a real WordPress, sending to a real receiver.

One WordPress serves the whole module (≈3 s to start); each test resets the plugin's settings and retry queue. The
receiver is a stdlib HTTP server in this process: it checks every signature with `shared.signing.verify` and every
body with the real receiver's `parse_event`, records what came, and can be told to answer an error, to hang, or
to go down. Posts are changed with the functions an editor's actions end in (wp_insert_post, wp_update_post,
wp_trash_post…) through `WordPressServer.php()`: the plugin sends when that PHP request ends, so the receiver
has everything by the time php() returns. WP-Cron is off in the test site; tests call the retry runs directly and
move the plugin's scheduling clock forward (the `cmsrag_webhooks_now` filter) instead of sleeping.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from services.ingest.events import InvalidEvent, parse_event
from shared.signing import SignatureError, signature, verify
from tests.cms.wordpress import ADMIN_PASSWORD, WORDPRESS_TREE, WordPressServer, free_port, php_str
from tests.conftest import unavailable

PLUGIN_ROOT = Path(__file__).resolve().parents[2] / "services" / "ingest" / "wordpress"
PLUGIN = PLUGIN_ROOT / "cmsrag-webhooks"
LOADER = PLUGIN_ROOT / "cmsrag-webhooks-loader.php"
SECRET = "test-secret-0123456789abcdef"
SITE = "blog"

# Three custom post types: one cmsrag should hear about (public, in the REST API as "docs"), two it cannot fetch.
TYPES_MU_PLUGIN = """<?php
add_action('init', 'cmsrag_test_register_types');
function cmsrag_test_register_types() {
    register_post_type('cmsrag_doc', ['public' => true, 'show_in_rest' => true, 'rest_base' => 'docs',
                                      'label' => 'Docs']);
    register_post_type('cmsrag_internal', ['public' => false, 'show_in_rest' => true, 'label' => 'Internal']);
    register_post_type('cmsrag_norest', ['public' => true, 'show_in_rest' => false, 'label' => 'No REST']);
}
"""
QUEUE_OPTIONS = ("cmsrag_webhooks_queue", "cmsrag_webhooks_failures", "cmsrag_webhooks_next_retry",
                 "cmsrag_webhooks_queue_lock")


def later(seconds: int) -> str:
    """PHP that moves the plugin's scheduling clock `seconds` ahead (signatures keep the real time)."""
    return f"add_filter('cmsrag_webhooks_now', function ($t) {{ return $t + {seconds}; }});"


def publish_php(title: str = "Hello", post_type: str = "post", status: str = "publish") -> str:
    """PHP for a new post; leaves its id in $id."""
    return (f"$id = wp_insert_post(['post_title' => {php_str(title)}, 'post_type' => {php_str(post_type)}, "
            f"'post_status' => {php_str(status)}, 'post_content' => '<p>Body</p>'], true);"
            "if (is_wp_error($id)) { fwrite(STDERR, $id->get_error_message()); exit(1); }")


# -- the receiver -----------------------------------------------------------------------------------------------


@dataclass
class Delivery:
    """One request the receiver got, with what it made of it."""

    path: str
    headers: dict[str, str]
    body: bytes
    verified: str | None  # the webhook id if a signature matched one of the receiver's secrets
    problem: str | None  # why the signature or the body was refused

    @property
    def event(self) -> dict[str, Any]:
        return dict(json.loads(self.body))

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def timestamp(self) -> int:
        return int(self.headers["webhook-timestamp"])

    @property
    def signatures(self) -> list[str]:
        return self.headers["webhook-signature"].split(" ")


class Receiver:
    """A webhook receiver on 127.0.0.1.

    Each request gets the first of `answers` (consumed), else `answer`: a status code, or "hang" (202 after
    `hang_seconds`, which is longer than the plugin waits). 503s come with `Retry-After: retry_after`.
    """

    def __init__(self) -> None:
        self.secrets = [SECRET]
        self.answer: int | str = 202
        self.answers: list[int | str] = []
        self.hang_seconds = 2.5
        self.retry_after = "30"
        self.deliveries: list[Delivery] = []
        self.port = 0
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Listen (again, on the same port after `stop`)."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver._record(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                with receiver._lock:
                    answer = receiver.answers.pop(0) if receiver.answers else receiver.answer
                if answer == "hang":
                    time.sleep(receiver.hang_seconds)
                    answer = 202
                assert isinstance(answer, int)
                reply = json.dumps({"status": "queued"} if answer < 300 else {"error": f"answer {answer}"})
                self.send_response(answer)
                self.send_header("Content-Type", "application/json")
                if answer == 503:
                    self.send_header("Retry-After", receiver.retry_after)
                self.end_headers()
                self.wfile.write(reply.encode())

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        """Go down: the port refuses connections until `start`."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def reset(self) -> None:
        if self._server is None:
            self.start()
        self.secrets, self.answer, self.retry_after = [SECRET], 202, "30"
        with self._lock:
            self.deliveries.clear()
            self.answers.clear()

    def received(self, count: int, timeout: float = 10.0) -> list[Delivery]:
        """The deliveries once there are `count` (for sends made by the HTTP-served site, which return later)."""
        deadline = time.monotonic() + timeout
        while len(self.deliveries) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.1)  # and nothing more on its way
        return list(self.deliveries)

    def _record(self, path: str, headers: dict[str, str], body: bytes) -> None:
        verified, problem = None, None
        try:
            verified = verify(self.secrets, headers, body)
            parse_event("wordpress", SITE, json.loads(body))
        except (SignatureError, InvalidEvent, ValueError) as exc:
            problem = f"{exc.__class__.__name__}: {exc}"
        with self._lock:
            self.deliveries.append(Delivery(path, headers, body, verified, problem))


# -- fixtures -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.start()
    yield r
    r.stop()


@pytest.fixture(scope="session")
def wordpress(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WordPressServer]:
    missing = [t for t in ("php", "mariadbd", "mariadb-install-db") if not shutil.which(t)]
    if missing or not WORDPRESS_TREE.is_dir():
        unavailable("WordPress (Debian: wordpress, php, mariadb-server)", f"missing {missing or WORDPRESS_TREE}")
    site = WordPressServer(tmp_path_factory.mktemp("wp-plugin")).start()
    try:
        site.install_plugin(PLUGIN)
        site.add_mu_plugin("cmsrag-test-types.php", TYPES_MU_PLUGIN)
        yield site
    finally:
        site.stop()


@pytest.fixture
def wp(wordpress: WordPressServer, receiver: Receiver) -> WordPressServer:
    """The site, configured to send to `receiver` with SECRET, with an empty retry queue."""
    receiver.reset()
    settings = {"receiver_url": receiver.url, "site": SITE, "secrets": [SECRET]}
    wordpress.php(f"update_option('cmsrag_webhooks_settings', json_decode({php_str(json.dumps(settings))}, true));"
                  f"foreach (json_decode({php_str(json.dumps(QUEUE_OPTIONS))}) as $o) {{ delete_option($o); }}"
                  "wp_clear_scheduled_hook('cmsrag_retry');")
    return wordpress


def queue(wp: WordPressServer) -> list[dict[str, Any]]:
    return list(wp.php_json("echo json_encode(cmsrag_webhooks_queue());"))


def with_log(wp: WordPressServer, tmp_path: Path, code: str) -> tuple[str, str]:
    """Run `code` with PHP's error log in a file; its output and what the plugin logged."""
    log = tmp_path / "php-error.log"
    out = wp.php(f"ini_set('error_log', {php_str(str(log))});\n{code}")
    return out, (log.read_text() if log.exists() else "")


def events(receiver: Receiver) -> list[tuple[str, str]]:
    """(event, id) of every delivery, after checking each was signed and valid."""
    for d in receiver.deliveries:
        assert d.problem is None and d.verified == d.webhook_id, d
    return [(d.event["event"], d.event["id"]) for d in receiver.deliveries]


# -- static checks ------------------------------------------------------------------------------------------------


def test_every_php_file_of_the_plugin_passes_php_lint() -> None:
    if not shutil.which("php"):
        unavailable("php", "not installed")
    files = sorted(PLUGIN_ROOT.rglob("*.php"))
    assert len(files) >= 7
    for path in files:
        r = subprocess.run(["php", "-l", str(path)], capture_output=True, text=True)
        assert r.returncode == 0, f"{path}: {r.stdout}{r.stderr}"


def test_the_event_for_each_status_change_follows_the_documented_table(wp: WordPressServer) -> None:
    table = {
        ("new", "publish"): "published", ("auto-draft", "publish"): "published", ("draft", "publish"): "published",
        ("pending", "publish"): "published", ("future", "publish"): "published",
        ("publish", "publish"): "updated",
        ("publish", "draft"): "unpublished", ("publish", "pending"): "unpublished",
        ("publish", "future"): "unpublished", ("publish", "private"): "unpublished",
        ("new", "private"): "published", ("draft", "private"): "published", ("private", "publish"): "published",
        ("private", "private"): "updated", ("private", "draft"): "unpublished",
        ("publish", "trash"): "trashed", ("draft", "trash"): "trashed", ("private", "trash"): "trashed",
        ("trash", "publish"): "restored", ("trash", "draft"): "restored", ("trash", "private"): "restored",
        ("new", "draft"): None, ("new", "auto-draft"): None, ("auto-draft", "draft"): None,
        ("draft", "draft"): None, ("draft", "pending"): None, ("pending", "draft"): None,
        ("new", "future"): None, ("draft", "future"): None, ("trash", "trash"): None,
        ("auto-draft", "trash"): None,
    }
    pairs = [list(pair) for pair in table]
    got = wp.php_json(f"$pairs = json_decode({php_str(json.dumps(pairs))});"
                      "echo json_encode(array_map(function ($p) { "
                      "return cmsrag_webhooks_event_for_transition($p[0], $p[1]); }, $pairs));")
    assert dict(zip(table, got, strict=True)) == table


def test_retry_delays_double_from_one_minute_up_to_an_hour(wp: WordPressServer) -> None:
    delays = wp.php_json("echo json_encode(array_map('cmsrag_webhooks_backoff', range(1, 9)));")
    assert [d // 60 for d in delays] == [1, 2, 4, 8, 16, 32, 60, 60, 60]


# -- which changes send what ------------------------------------------------------------------------------------


def test_publishing_a_new_post_sends_one_signed_published_event(wp: WordPressServer, receiver: Receiver) -> None:
    post = wp.php_json(publish_php("Hello world") + "echo json_encode(['id' => $id, 'url' => get_permalink($id), "
                       "'modified' => get_post_modified_time('Y-m-d\\TH:i:s\\Z', true, $id)]);")
    [d] = receiver.deliveries
    assert d.problem is None and d.verified == d.webhook_id
    assert d.path == f"/webhooks/wordpress/{SITE}"
    assert d.headers["content-type"] == "application/json"
    assert re.fullmatch(r"wp_[0-9a-f-]{36}", d.webhook_id)
    assert abs(d.timestamp - time.time()) < 30
    assert d.event == {"event": "published", "id": f"posts:{post['id']}", "type": "post",
                       "modified": post["modified"], "url": post["url"]}


def test_updating_a_published_post_sends_one_updated_event(wp: WordPressServer, receiver: Receiver) -> None:
    post_id = int(wp.php(publish_php() + "echo $id;"))
    wp.php(f"wp_update_post(['ID' => {post_id}, 'post_content' => '<p>Changed</p>']);")
    assert events(receiver) == [("published", f"posts:{post_id}"), ("updated", f"posts:{post_id}")]


@pytest.mark.parametrize("status", ["draft", "pending", "private", "future"])
def test_taking_a_published_post_off_the_site_sends_unpublished(wp: WordPressServer, receiver: Receiver,
                                                                status: str) -> None:
    post_id = int(wp.php(publish_php() + "echo $id;"))
    future = ", 'post_date' => '2099-01-01 00:00:00', 'post_date_gmt' => '2099-01-01 00:00:00'"
    date = future if status == "future" else ""
    wp.php(f"wp_update_post(['ID' => {post_id}, 'post_status' => '{status}'{date}]);")
    assert wp.php(f"echo get_post_status({post_id});") == status
    assert events(receiver)[1:] == [("unpublished", f"posts:{post_id}")]


def test_trashing_a_post_sends_trashed_and_restoring_it_sends_restored(wp: WordPressServer,
                                                                        receiver: Receiver) -> None:
    post_id = int(wp.php(publish_php() + "echo $id;"))
    wp.php(f"wp_trash_post({post_id});")
    wp.php(f"wp_untrash_post({post_id});")  # back to draft, as WordPress >= 5.6 does by default
    wp.php(f"wp_trash_post({post_id});")
    # What a REST save of status=publish does: no untrashed_post; wp_after_insert_post still sees trash → publish.
    wp.php(f"wp_update_post(['ID' => {post_id}, 'post_status' => 'publish']);")
    key = f"posts:{post_id}"
    assert events(receiver) == [("published", key), ("trashed", key), ("restored", key), ("trashed", key),
                                ("restored", key)]


def test_force_deleting_a_published_post_sends_deleted(wp: WordPressServer, receiver: Receiver) -> None:
    post_id = int(wp.php(publish_php() + "echo $id;"))
    wp.php(f"wp_delete_post({post_id}, true);")
    assert events(receiver) == [("published", f"posts:{post_id}"), ("deleted", f"posts:{post_id}")]
    assert "modified" in receiver.deliveries[1].event


def test_deleting_without_force_moves_a_post_to_the_trash(wp: WordPressServer, receiver: Receiver) -> None:
    post_id = int(wp.php(publish_php() + "echo $id;"))
    wp.php(f"wp_delete_post({post_id});")
    assert events(receiver)[1:] == [("trashed", f"posts:{post_id}")]


def test_several_changes_to_a_post_in_one_request_send_one_event(wp: WordPressServer, receiver: Receiver) -> None:
    post_id = int(wp.php(publish_php() + "wp_update_post(['ID' => $id, 'post_title' => 'Again']);"
                         "wp_update_post(['ID' => $id, 'post_content' => 'And again']); echo $id;"))
    assert events(receiver) == [("updated", f"posts:{post_id}")]  # the last event wins


def test_a_deletion_wins_over_every_other_change_in_the_same_request(wp: WordPressServer,
                                                                      receiver: Receiver) -> None:
    post_id = int(wp.php(publish_php() + "echo $id;"))
    wp.php(f"wp_trash_post({post_id}); wp_untrash_post({post_id}); wp_delete_post({post_id}, true);")
    assert events(receiver)[1:] == [("deleted", f"posts:{post_id}")]


def test_changes_to_several_posts_in_one_request_send_one_event_each_in_order(wp: WordPressServer,
                                                                             receiver: Receiver) -> None:
    ids = wp.php_json(publish_php("A") + "$a = $id;" + publish_php("B") + "$b = $id; wp_trash_post($a);"
                      "echo json_encode([$a, $b]);")
    assert events(receiver) == [("published", f"posts:{ids[1]}"), ("trashed", f"posts:{ids[0]}")]
    assert len({d.webhook_id for d in receiver.deliveries}) == 2


def test_a_page_is_sent_as_pages_and_its_id(wp: WordPressServer, receiver: Receiver) -> None:
    page_id = int(wp.php(publish_php("About", "page") + "echo $id;"))
    assert events(receiver) == [("published", f"pages:{page_id}")]
    assert receiver.deliveries[0].event["type"] == "page"


@pytest.mark.parametrize(("post_type", "expected_base"), [
    ("cmsrag_doc", "docs"),  # public and in the REST API: its rest_base
    ("cmsrag_internal", None),  # not public
    ("cmsrag_norest", None),  # public but not in the REST API, which cmsrag fetches from
])
def test_a_custom_post_type_is_sent_under_its_rest_base_when_public_and_fetchable(
        wp: WordPressServer, receiver: Receiver, post_type: str, expected_base: str | None) -> None:
    post_id = int(wp.php(publish_php("Custom", post_type) + "echo $id;"))
    wp.php(f"wp_delete_post({post_id}, true);")
    expected = [("published", f"{expected_base}:{post_id}"), ("deleted", f"{expected_base}:{post_id}")]
    assert events(receiver) == (expected if expected_base else [])


def test_revisions_autosaves_auto_drafts_menu_items_and_media_send_nothing(wp: WordPressServer,
                                                                          receiver: Receiver) -> None:
    post_id = int(wp.php(publish_php() + "echo $id;"))
    draft_id = int(wp.php(publish_php("Draft", status="draft") + "echo $id;"))
    receiver.deliveries.clear()
    wp.php(f"""
        require_once ABSPATH . 'wp-admin/includes/post.php';
        _wp_put_post_revision(get_post({post_id}));
        // The author's autosave: a revision for a published post, the post itself (draft → draft) for a draft.
        foreach ([{post_id}, {draft_id}] as $p) {{
            $r = wp_create_post_autosave(['post_ID' => $p, 'post_title' => 'Autosaved', 'post_content' => 'new',
                                          'post_excerpt' => '', 'post_type' => 'post']);
            if (is_wp_error($r) || !$r) {{ fwrite(STDERR, 'autosave failed'); exit(1); }}
        }}
        $auto = get_default_post_to_edit('post', true);
        if ($auto->post_status !== 'auto-draft') {{ fwrite(STDERR, 'no auto-draft'); exit(1); }}
        wp_delete_post($auto->ID, true);
        $menu = wp_create_nav_menu('Menu ' . uniqid());
        wp_update_nav_menu_item($menu, 0, ['menu-item-title' => 'Home', 'menu-item-url' => home_url('/'),
                                           'menu-item-status' => 'publish']);
        $media = wp_insert_attachment(['post_title' => 'Picture', 'post_mime_type' => 'image/png',
                                       'post_status' => 'inherit'], false, {post_id});
        wp_delete_attachment($media, true);
    """)
    assert wp.php_json(f"echo json_encode(count(wp_get_post_revisions({post_id})));") >= 2
    assert events(receiver) == []


def test_a_draft_saved_again_or_sent_for_review_sends_nothing(wp: WordPressServer, receiver: Receiver) -> None:
    draft_id = int(wp.php(publish_php("Draft", status="draft") + "echo $id;"))
    wp.php(f"wp_update_post(['ID' => {draft_id}, 'post_content' => 'more']);")
    wp.php(f"wp_update_post(['ID' => {draft_id}, 'post_status' => 'pending']);")
    assert events(receiver) == []


@pytest.mark.parametrize(("before", "expected"), [
    (None, ["published"]),  # "Privately Published": cmsrag indexes it when it has credentials for the site
    ("publish", ["published", "unpublished"]),
    ("private", ["published", "updated"]),  # edited while private
])
def test_a_private_post_is_sent_since_an_index_with_credentials_reads_it(
        wp: WordPressServer, receiver: Receiver, before: str | None, expected: list[str]) -> None:
    if before is None:
        post_id = int(wp.php(publish_php(status="private") + "echo $id;"))
    else:
        post_id = int(wp.php(publish_php(status=before) + "echo $id;"))
        wp.php(f"wp_update_post(['ID' => {post_id}, 'post_status' => 'private', 'post_content' => 'edited']);")
    assert events(receiver) == [(e, f"posts:{post_id}") for e in expected]


def test_a_scheduled_post_is_sent_when_it_goes_live_not_when_it_is_scheduled(wp: WordPressServer,
                                                                           receiver: Receiver) -> None:
    post_id = int(wp.php("$id = wp_insert_post(['post_title' => 'Later', 'post_status' => 'future',"
                         " 'post_date' => '2099-01-01 00:00:00']); echo $id;"))
    assert wp.php(f"echo get_post_status({post_id});") == "future"
    assert events(receiver) == []
    wp.php(f"wp_publish_post({post_id});")  # what WP-Cron's publish_future_post does
    assert events(receiver) == [("published", f"posts:{post_id}")]


def test_the_rest_api_create_trash_restore_and_delete_each_send_one_event(wp: WordPressServer,
                                                                          receiver: Receiver) -> None:
    api = requests.Session()
    api.auth = ("admin", wp.create_app_password(name="rest-test"))
    posts = f"{wp.base_url}/wp-json/wp/v2/posts"
    r = api.post(posts, json={"title": "Via REST", "status": "publish", "content": "<p>x</p>"}, timeout=30)
    assert r.status_code == 201, r.text
    post_id = r.json()["id"]
    assert api.delete(f"{posts}/{post_id}", timeout=30).json()["status"] == "trash"
    assert api.post(f"{posts}/{post_id}", json={"status": "publish"}, timeout=30).json()["status"] == "publish"
    assert api.delete(f"{posts}/{post_id}", params={"force": "true"}, timeout=30).status_code == 200
    receiver.received(4)
    key = f"posts:{post_id}"
    assert events(receiver) == [("published", key), ("trashed", key), ("restored", key), ("deleted", key)]


# -- failures and retries -------------------------------------------------------------------------------------


def test_an_event_sent_while_the_receiver_is_down_is_queued_and_redelivered_with_the_same_webhook_id(
        wp: WordPressServer, receiver: Receiver) -> None:
    receiver.stop()
    started = time.time()
    post_id = int(wp.php(publish_php() + "echo $id;"))
    [entry] = queue(wp)
    assert (entry["event"], entry["id"], entry["attempts"]) == ("published", f"posts:{post_id}", 1)
    assert entry["last_error"] and 55 <= entry["next_attempt"] - started <= 70
    assert wp.php_json("echo json_encode(wp_get_scheduled_event('cmsrag_retry'));")["schedule"] == \
        "cmsrag_every_minute"

    receiver.start()
    summary = wp.php_json("echo json_encode(cmsrag_webhooks_retry_now());")
    assert summary == {"delivered": 1, "rejected": 0, "retrying": 0, "gave_up": 0, "remaining": 0}
    [d] = receiver.deliveries
    assert (d.webhook_id, d.body.decode()) == (entry["webhook_id"], entry["body"])
    assert events(receiver) == [("published", f"posts:{post_id}")]
    assert queue(wp) == []
    assert wp.php_json("echo json_encode([(int) get_option('cmsrag_webhooks_next_retry'),"
                       " wp_next_scheduled('cmsrag_retry')]);") == [0, False]


def test_error_answers_are_retried_later_with_the_same_id_and_body_and_a_fresh_signature(
        wp: WordPressServer, receiver: Receiver) -> None:
    errors = [503, 500, 429, 302]  # anything but 2xx and the definitive 4xx: try again later
    receiver.answers = list(errors)
    for _ in errors:  # one request each: after a failure, a request queues its other events without trying
        wp.php(publish_php())
    entries = queue(wp)
    assert [e["attempts"] for e in entries] == [1, 1, 1, 1]
    assert [e["last_error"].split()[:2] for e in entries] == [["HTTP", str(status)] for status in errors]
    time.sleep(1.1)  # so that a re-computed timestamp differs
    assert wp.php_json("echo json_encode(cmsrag_webhooks_retry_now());")["delivered"] == 4
    first, retries = receiver.deliveries[:4], receiver.deliveries[4:]
    for entry, failed, retry in zip(entries, first, retries, strict=True):
        assert retry.webhook_id == failed.webhook_id == entry["webhook_id"] and retry.body == failed.body
        assert retry.verified == retry.webhook_id and retry.timestamp > failed.timestamp
        assert retry.signatures != failed.signatures
    assert queue(wp) == []


def test_a_receiver_that_does_not_answer_in_time_gets_the_event_again_later(wp: WordPressServer,
                                                                           receiver: Receiver) -> None:
    receiver.answer = "hang"
    wp.php("add_filter('cmsrag_webhooks_timeout', function () { return 1; });" + publish_php())
    [entry] = queue(wp)
    assert entry["attempts"] == 1 and "timed out" in entry["last_error"]
    receiver.answer = 202
    wp.php("cmsrag_webhooks_retry_now();")
    first, retry = receiver.received(2)
    assert retry.webhook_id == first.webhook_id == entry["webhook_id"] and retry.body == first.body
    assert queue(wp) == []


def test_a_retry_after_longer_than_the_backoff_is_respected(wp: WordPressServer, receiver: Receiver) -> None:
    receiver.answer, receiver.retry_after = 503, "600"
    started = time.time()
    wp.php(publish_php())
    [entry] = queue(wp)
    assert 595 <= entry["next_attempt"] - started <= 610


def test_a_definitive_client_error_is_logged_and_never_retried(wp: WordPressServer, receiver: Receiver,
                                                               tmp_path: Path) -> None:
    statuses = [400, 401, 404, 413, 415, 422]
    receiver.answers = list(statuses)
    _, log = with_log(wp, tmp_path, "".join(publish_php(f"Post {s}") for s in statuses))
    assert len(receiver.deliveries) == len(statuses)  # a refused event does not stop the others
    assert queue(wp) == []
    for d, status in zip(receiver.deliveries, statuses, strict=True):
        assert re.search(rf"cmsrag_webhook_rejected webhook_id={d.webhook_id} .*HTTP {status}", log)
    failures = wp.php_json("echo json_encode(get_option('cmsrag_webhooks_failures'));")
    assert [(f["what"], f["error"].split()[1]) for f in reversed(failures)] == [
        ("cmsrag_webhook_rejected", str(s)) for s in statuses]
    wp.php("cmsrag_webhooks_retry_now();")
    assert len(receiver.deliveries) == len(statuses)


def test_after_one_failure_the_other_events_of_the_request_are_queued_without_trying(
        wp: WordPressServer, receiver: Receiver) -> None:
    receiver.answer = 503
    wp.php(publish_php("A") + publish_php("B") + publish_php("C"))
    assert len(receiver.deliveries) == 1
    assert [e["attempts"] for e in queue(wp)] == [1, 0, 0]
    receiver.answer = 202
    assert wp.php_json("echo json_encode(cmsrag_webhooks_retry_now());")["delivered"] == 3
    assert [e for e, _ in events(receiver)] == ["published"] * 4


def test_failed_retries_back_off_and_are_given_up_after_a_day(wp: WordPressServer, receiver: Receiver,
                                                             tmp_path: Path) -> None:
    receiver.stop()
    wp.php(publish_php())
    for attempts, delay in ((2, 120), (3, 240)):
        before = time.time()
        assert wp.php_json("echo json_encode(cmsrag_webhooks_retry_now());")["retrying"] == 1
        [entry] = queue(wp)
        assert entry["attempts"] == attempts
        assert delay - 5 <= entry["next_attempt"] - before <= delay + 5
    _, log = with_log(wp, tmp_path, later(25 * 3600) + "echo json_encode(cmsrag_webhooks_retry_now());")
    assert queue(wp) == []
    assert "cmsrag_webhook_gave_up" in log and "attempts=4" in log


def test_the_minutely_cron_event_sends_only_the_events_that_are_due(wp: WordPressServer,
                                                                   receiver: Receiver) -> None:
    receiver.stop()
    wp.php(publish_php())
    assert wp.php_json("echo json_encode(wp_get_schedules()['cmsrag_every_minute']['interval']);") == 60
    receiver.start()
    wp.php("do_action('cmsrag_retry');")
    assert receiver.deliveries == []
    wp.php(later(61) + "do_action('cmsrag_retry');")
    assert len(events(receiver)) == 1
    assert wp.php_json("echo json_encode(wp_next_scheduled('cmsrag_retry'));") is False


def test_a_later_request_retries_a_few_due_events_when_it_ends(wp: WordPressServer, receiver: Receiver) -> None:
    receiver.stop()
    wp.php("".join(publish_php(f"Post {n}") for n in range(7)))
    assert len(queue(wp)) == 7
    receiver.start()
    wp.php("echo 'an unrelated request';")
    assert receiver.deliveries == []  # nothing due yet
    wp.php(later(61) + "echo 'an unrelated request';")
    assert len(events(receiver)) == 5
    assert len(queue(wp)) == 2


def test_the_queue_keeps_at_most_its_limit_and_logs_the_events_it_drops(wp: WordPressServer,
                                                                       receiver: Receiver,
                                                                       tmp_path: Path) -> None:
    receiver.stop()
    ids, log = with_log(wp, tmp_path, "add_filter('cmsrag_webhooks_queue_limit', function () { return 2; });"
                        + publish_php("A") + "$a = $id;" + publish_php("B") + "$b = $id;" + publish_php("C")
                        + "echo json_encode([$a, $b, $id]);")
    first, *kept = json.loads(ids)
    assert [e["id"] for e in queue(wp)] == [f"posts:{i}" for i in kept]
    assert re.search(rf"cmsrag_webhook_dropped .*id=posts:{first} ", log)


def test_a_newer_event_for_a_queued_post_replaces_the_queued_one(wp: WordPressServer, receiver: Receiver) -> None:
    receiver.stop()
    post_id = int(wp.php(publish_php() + "echo $id;"))
    wp.php(f"wp_trash_post({post_id});")
    assert [(e["event"], e["id"]) for e in queue(wp)] == [("trashed", f"posts:{post_id}")]


def test_nothing_is_sent_or_queued_while_the_plugin_is_not_configured(wp: WordPressServer, receiver: Receiver,
                                                                     tmp_path: Path) -> None:
    wp.php("delete_option('cmsrag_webhooks_settings');")
    _, log = with_log(wp, tmp_path, publish_php())
    assert receiver.deliveries == [] and queue(wp) == []
    assert "cmsrag_webhook_not_configured events=1" in log


# -- secrets and settings -----------------------------------------------------------------------------------------


def test_two_secrets_during_a_rotation_send_two_signatures_either_of_which_verifies(
        wp: WordPressServer, receiver: Receiver) -> None:
    old, new = "old-secret-0123456789", "whsec_" + base64.b64encode(b"new secret bytes, 32 of them....").decode()
    wp.php(f"$s = get_option('cmsrag_webhooks_settings'); $s['secrets'] = [{php_str(old)}, {php_str(new)}];"
           "update_option('cmsrag_webhooks_settings', $s);")
    receiver.secrets = [old]
    wp.php(publish_php())
    [d] = receiver.deliveries
    assert len(d.signatures) == 2
    for secrets in ([old], [new]):
        assert verify(secrets, d.headers, d.body) == d.webhook_id
    with pytest.raises(SignatureError):
        verify([SECRET], d.headers, d.body)


@pytest.mark.parametrize("secret", [
    "plain-secret-0123456789",
    "sécret-ünïcode-0123456789",
    "whsec_" + base64.b64encode(bytes(range(32))).decode(),  # the standard's form: decoded bytes are the key
    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",  # valid base64 without padding characters
    "whsec_YWJjZA",  # missing padding: Python refuses it as base64, so it is used as written
    "whsec_not base64 at all!",
    "whsec_",
])
def test_signatures_match_the_python_reference_for_plain_and_whsec_secrets(wp: WordPressServer,
                                                                           secret: str) -> None:
    body = '{"event":"updated","id":"posts:1"}'
    php = wp.php(f"echo cmsrag_webhooks_signature({php_str(secret)}, 'wp_x', 1700000000, {php_str(body)});")
    assert php == signature(secret, "wp_x", 1700000000, body.encode())


def test_wp_config_constants_override_the_settings_page(wp: WordPressServer, receiver: Receiver) -> None:
    constant_secrets = ["constant-secret-one-0123", "constant-secret-two-0123"]
    wp.php(f"update_option('cmsrag_webhooks_settings', ['receiver_url' => 'http://127.0.0.1:{free_port()}',"
           f" 'site' => 'not-this-one', 'secrets' => ['option-secret-0123456789']]);")
    wp.set_config("CMSRAG_RECEIVER_URL", receiver.url + "/")
    wp.set_config("CMSRAG_SITE", SITE)
    wp.set_config("CMSRAG_WEBHOOK_SECRET", "\n".join(constant_secrets) + "\n")
    try:
        receiver.secrets = constant_secrets[1:]
        wp.php(publish_php())
        [d] = receiver.deliveries
        assert d.path == f"/webhooks/wordpress/{SITE}" and d.verified == d.webhook_id
        assert len(d.signatures) == 2
        with pytest.raises(SignatureError):
            verify(["option-secret-0123456789"], d.headers, d.body)

        page = admin_session(wp).get(f"{wp.base_url}/wp-admin/options-general.php?page=cmsrag", timeout=30).text
        assert "Set in wp-config.php (CMSRAG_RECEIVER_URL)" in page
        assert "Set in wp-config.php (CMSRAG_WEBHOOK_SECRET)" in page
        assert re.search(r'id="cmsrag-webhooks-site"[^>]*disabled', page)
        assert not any(s in page for s in (*constant_secrets, "option-secret-0123456789"))
    finally:
        for name in ("CMSRAG_RECEIVER_URL", "CMSRAG_SITE", "CMSRAG_WEBHOOK_SECRET"):
            wp.set_config(name, None)


def admin_session(wp: WordPressServer, user: str = "admin", password: str = ADMIN_PASSWORD) -> requests.Session:
    """A browser-like session logged in to wp-admin."""
    session = requests.Session()
    session.get(f"{wp.base_url}/wp-login.php", timeout=30)  # WordPress wants its test cookie back
    r = session.post(f"{wp.base_url}/wp-login.php", timeout=30, allow_redirects=False,
                     data={"log": user, "pwd": password, "testcookie": "1", "wp-submit": "Log In",
                           "redirect_to": f"{wp.base_url}/wp-admin/"})
    assert r.status_code == 302, f"login as {user} failed"
    return session


def form_fields(html: str, action: str) -> dict[str, str]:
    """The hidden fields of the form posting to `action`."""
    form = re.search(rf'<form action="[^"]*{re.escape(action)}"[^>]*>(.*?)</form>', html, re.S)
    assert form, f"no form posting to {action}"
    return dict(re.findall(r"<input type=[\"']hidden[\"'][^>]*name=[\"']([^\"']+)[\"'][^>]*value=[\"']([^\"']*)[\"']",
                           form.group(1)))


def stored_settings(wp: WordPressServer) -> dict[str, Any]:
    return dict(wp.php_json("echo json_encode(get_option('cmsrag_webhooks_settings'));"))


def test_the_settings_page_saves_the_settings_and_never_shows_a_secret(wp: WordPressServer) -> None:
    session = admin_session(wp)
    page_url = f"{wp.base_url}/wp-admin/options-general.php?page=cmsrag"
    page = session.get(page_url, timeout=30).text
    fingerprint = wp.php(f"echo cmsrag_webhooks_secret_fingerprint({php_str(SECRET)});")
    assert fingerprint in page and SECRET not in page
    fields = form_fields(page, "options.php")
    assert fields["option_page"] == "cmsrag_webhooks" and fields["_wpnonce"]

    new_secret = "a-brand-new-secret-0123456789"
    form = {**fields, "cmsrag_webhooks_settings[receiver_url]": "https://cmsrag.example.org/",
            "cmsrag_webhooks_settings[site]": "news", "cmsrag_webhooks_settings[keep_secrets][]": fingerprint,
            "cmsrag_webhooks_settings[new_secrets]": f"{new_secret}\n\n  too-short  \n"}
    saved = session.post(f"{wp.base_url}/wp-admin/options.php", data=form, timeout=30)
    assert saved.status_code == 200 and "at least 16 characters" in saved.text
    assert stored_settings(wp) == {"receiver_url": "https://cmsrag.example.org", "site": "news",
                                   "secrets": [SECRET, new_secret]}
    assert SECRET not in saved.text and new_secret not in saved.text
    assert "https://cmsrag.example.org/webhooks/wordpress/news" in saved.text

    # Unticking the old secret removes it; a bad site name is refused and the stored one kept.
    form = {**form_fields(saved.text, "options.php"), "cmsrag_webhooks_settings[site]": "Not A Name!",
            "cmsrag_webhooks_settings[keep_secrets][]": wp.php(
                f"echo cmsrag_webhooks_secret_fingerprint({php_str(new_secret)});"),
            "cmsrag_webhooks_settings[receiver_url]": "https://cmsrag.example.org"}
    assert "lower-case letters" in session.post(f"{wp.base_url}/wp-admin/options.php", data=form, timeout=30).text
    assert stored_settings(wp) == {"receiver_url": "https://cmsrag.example.org", "site": "news",
                                   "secrets": [new_secret]}


def test_the_settings_page_refuses_a_forged_post_and_users_without_manage_options(wp: WordPressServer) -> None:
    before = stored_settings(wp)
    session = admin_session(wp)
    forged = session.post(f"{wp.base_url}/wp-admin/options.php", timeout=30, data={
        "option_page": "cmsrag_webhooks", "action": "update", "_wpnonce": "0123456789",
        "cmsrag_webhooks_settings[site]": "forged"})
    assert forged.status_code == 403
    wp.php("if (!get_user_by('login', 'editor1')) { wp_insert_user(['user_login' => 'editor1', 'role' => 'editor',"
           " 'user_pass' => 'editor-password', 'user_email' => 'editor1@example.com']); }")
    editor = admin_session(wp, "editor1", "editor-password")
    assert editor.get(f"{wp.base_url}/wp-admin/options-general.php?page=cmsrag", timeout=30).status_code == 403
    assert stored_settings(wp) == before


def test_the_retry_now_button_redelivers_the_queued_events(wp: WordPressServer, receiver: Receiver) -> None:
    receiver.stop()
    post_id = int(wp.php(publish_php() + "echo $id;"))
    receiver.start()
    session = admin_session(wp)
    page = session.get(f"{wp.base_url}/wp-admin/options-general.php?page=cmsrag", timeout=30).text
    assert "1 event waits to be re-sent." in page and f"posts:{post_id}" in page
    done = session.post(f"{wp.base_url}/wp-admin/admin-post.php", timeout=30,
                        data=form_fields(page, "admin-post.php"))
    assert "Retried: 1 delivered" in done.text
    assert events(receiver) == [("published", f"posts:{post_id}")]


def test_the_plugin_also_runs_as_an_mu_plugin_through_the_loader(wp: WordPressServer, receiver: Receiver) -> None:
    plugin = "cmsrag-webhooks/cmsrag-webhooks.php"
    wp.deactivate_plugin(plugin)
    try:
        wp.install_mu_plugin(PLUGIN)
        wp.install_mu_plugin(LOADER)
        post_id = int(wp.php(publish_php() + "echo $id;"))
        assert events(receiver) == [("published", f"posts:{post_id}")]
        wp.activate_plugin(plugin)  # both copies present: the second stays idle instead of failing
        wp.php(f"wp_update_post(['ID' => {post_id}, 'post_content' => 'changed']);")
        assert events(receiver) == [("published", f"posts:{post_id}"), ("updated", f"posts:{post_id}")]
    finally:
        wp.remove_mu_plugin(LOADER.name)
        wp.remove_mu_plugin(PLUGIN.name)
        wp.activate_plugin(plugin)


def test_events_failing_in_parallel_requests_all_reach_the_queue(wp: WordPressServer, receiver: Receiver) -> None:
    receiver.stop()
    auth = ("admin", wp.create_app_password(name="parallel"))

    def create(n: int) -> int:
        r = requests.post(f"{wp.base_url}/wp-json/wp/v2/posts", auth=auth, timeout=30,
                          json={"title": f"Parallel {n}", "status": "publish"})
        assert r.status_code == 201, r.text
        return int(r.json()["id"])

    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = list(pool.map(create, range(16)))
    assert sorted(e["id"] for e in queue(wp)) == sorted(f"posts:{i}" for i in ids)


def test_uninstalling_removes_the_plugins_options_and_cron_event(wp: WordPressServer, receiver: Receiver) -> None:
    receiver.stop()
    wp.php(publish_php())
    left = wp.php_json("""
        require_once ABSPATH . 'wp-admin/includes/plugin.php';
        uninstall_plugin('cmsrag-webhooks/cmsrag-webhooks.php');
        wp_cache_flush();
        $names = ['cmsrag_webhooks_settings', 'cmsrag_webhooks_queue', 'cmsrag_webhooks_next_retry'];
        echo json_encode([array_filter($names, function ($n) { return get_option($n) !== false; }),
                          wp_next_scheduled('cmsrag_retry')]);
    """)
    assert left == [[], False]
