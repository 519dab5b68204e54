"""Replay recorded CMS API answers from a real HTTP server on 127.0.0.1, for any CMS kind.

A real server rather than a mocked `requests`: the code under test then goes through its whole HTTP
stack (connection handling, timeouts, streamed size caps, header parsing), and the answers are bytes a real
CMS sent.

A fixture folder holds `index.json`, mapping "path?query" to what was recorded::

    {"/wp-json/wp/v2/pages/7": {"status": 200, "headers": {"Content-Type": "application/json"},
                                "body_file": "pages-7.json"}}

(`"body": "text"` may stand in for `body_file`). Query parameters are compared decoded and sorted, so the
order in which a client sends them does not matter. Tests script extra answers on top with
`add(key, *replies)`: the replies are served in turn and the last one repeats, which is how "503 twice, then
200" is written. A request with no recording gets a 501 naming the key, never a 404, so a test expecting
"not found" cannot pass by accident.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit


def normalize_key(raw: str) -> str:
    """`path?query` with the path percent-decoded and the query decoded and sorted."""
    parts = urlsplit(raw)
    query = sorted(parse_qsl(parts.query, keep_blank_values=True))
    path = unquote(parts.path) or "/"
    return path + ("?" + "&".join(f"{k}={v}" for k, v in query) if query else "")


@dataclass(frozen=True)
class Reply:
    """One scripted answer; `delay` holds it back (seconds) so a client's timeout can be tested."""

    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Reply:
        """A JSON answer with the content type a CMS API sends."""
        return cls(status, json.dumps(data).encode(),
                   {"Content-Type": "application/json; charset=UTF-8", **(headers or {})})


@dataclass(frozen=True)
class SeenRequest:
    """A request the server received: method, normalized key and headers (lower-case names)."""

    method: str
    key: str
    headers: dict[str, str]


class ReplayServer:
    """Serves a fixture folder (or only scripted replies) until `close()`; usable as a context manager."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder
        self.requests: list[SeenRequest] = []
        self._scripts: dict[str, list[Reply]] = {}
        self._lock = threading.Lock()
        if folder is not None:
            for key, entry in json.loads((folder / "index.json").read_text(encoding="utf-8")).items():
                self._scripts[normalize_key(key)] = [self._recorded(entry)]
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.replay = self
        # A short poll interval: shutdown() waits for it, once per test.
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,), name="cms-replay",
                                        daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """Base URL, without a trailing slash."""
        return f"http://127.0.0.1:{self._httpd.server_port}"

    def add(self, key: str, *replies: Reply) -> None:
        """Answer `key` with `replies` in turn (the last repeats), replacing any recording for it."""
        if not replies:
            raise ValueError("add() needs at least one reply")
        with self._lock:
            self._scripts[normalize_key(key)] = list(replies)

    def recording(self, key: str) -> Reply:
        """What `key` is answered with now (the recorded reply, unless scripted), to build scripts from."""
        with self._lock:
            return self._scripts[normalize_key(key)][0]

    def hits(self, key: str) -> int:
        """How many requests asked for `key`."""
        wanted = normalize_key(key)
        return sum(1 for r in self.requests if r.key == wanted)

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> ReplayServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _recorded(self, entry: Mapping[str, Any]) -> Reply:
        if "body_file" in entry:
            assert self.folder is not None
            body = (self.folder / entry["body_file"]).read_bytes()
        else:
            body = str(entry.get("body", "")).encode("utf-8")
        return Reply(int(entry.get("status", 200)), body, dict(entry.get("headers", {})))

    def _next_reply(self, method: str, raw_path: str, headers: Mapping[str, str]) -> Reply:
        key = normalize_key(raw_path)
        with self._lock:
            self.requests.append(SeenRequest(method, key, {k.lower(): v for k, v in headers.items()}))
            script = self._scripts.get(key)
            if script is None:
                missing = f"cms_replay: no recording for {key}\n".encode()
                return Reply(501, missing, {"Content-Type": "text/plain"})
            return script.pop(0) if len(script) > 1 else script[0]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a handler sleeping out a `delay` must not hold up close()
    replay: ReplayServer


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def _answer(self, *, send_body: bool) -> None:
        reply = self.server.replay._next_reply(self.command, self.path, dict(self.headers.items()))
        if reply.delay:
            time.sleep(reply.delay)
        try:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            if send_body:
                self.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test); nothing to report

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read `ReplayServer.requests` instead of an access log."""
