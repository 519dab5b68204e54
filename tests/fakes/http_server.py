"""The shared part of the fake LLM/embedding servers: a real HTTP server on 127.0.0.1 with fault knobs.

Tests drive the real `openai`/`anthropic` SDKs against it, so retries, timeouts, error mapping and SSE parsing
are exercised exactly as in production. Subclasses only route a parsed JSON request to a reply; this base
adds what tests and benchmarks need around that:

- `latency`: seconds to wait before every reply (benchmarks: 0.1 mimics a real API's round trip);
- `fail_next(status, n, body)`: the next `n` requests get that error, e.g. 503 to test retries;
- `poison`: substrings that make any request containing them (in any string field) fail with 400;
- counters `requests` and `inputs` per path, and `bodies`, the parsed requests in arrival order.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


@dataclass
class Reply:
    """A JSON body, or with `events` a streamed `text/event-stream` body sent in chunked encoding."""

    status: int = 200
    body: Any = None
    events: Iterable[bytes] | None = None
    headers: dict[str, str] = field(default_factory=dict)


def strings_in(value: Any) -> Iterator[str]:
    """Every string inside a parsed JSON value, for poison matching."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)


class FakeHTTPServer:
    """Start with `with Server() as srv:`; `route` and `error_body` are the subclass's part."""

    def __init__(self, latency: float = 0.0, retry_after_ms: float | None = 1.0) -> None:
        self.latency = latency
        # Sent with injected errors so SDK retries in tests wait milliseconds, not their 0.5 s+ backoff.
        self.retry_after_ms = retry_after_ms
        self.poison: list[str] = []
        self.requests: Counter[str] = Counter()
        self.inputs: Counter[str] = Counter()
        self.bodies: list[dict[str, Any]] = []
        self._failures: deque[tuple[int, Any]] = deque()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- the subclass's part -------------------------------------------------------------------------
    def route(self, path: str, body: dict[str, Any]) -> Reply:
        raise NotImplementedError

    def count_inputs(self, path: str, body: dict[str, Any]) -> int:
        return 1

    def error_body(self, status: int, message: str) -> Any:
        return {"error": {"message": message, "status": status}}

    # -- knobs ---------------------------------------------------------------------------------------
    def fail_next(self, status: int, n: int = 1, body: Any = None) -> None:
        """Answer the next `n` requests with `status` (and `body`, else the API's usual error shape)."""
        with self._lock:
            self._failures.extend([(status, body)] * n)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.inputs.clear()
            self.bodies.clear()
            self._failures.clear()
        self.poison.clear()

    # -- life cycle ----------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        return self._server.server_address[1]

    def start(self) -> Self:
        self._server = _QuietServer(("127.0.0.1", 0), _handler_for(self))
        # A short poll interval makes `stop()` (and so each test's teardown) take milliseconds, not 0.5 s.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), name=type(self).__name__, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- one request ---------------------------------------------------------------------------------
    def _answer(self, path: str, raw: bytes) -> Reply:
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return Reply(400, self.error_body(400, "request body is not JSON"))
        with self._lock:
            self.requests[path] += 1
            self.inputs[path] += self.count_inputs(path, body)
            self.bodies.append(body)
            failure = self._failures.popleft() if self._failures else None
        if self.latency:
            time.sleep(self.latency)
        if failure is not None:
            status, fail_body = failure
            headers = {} if self.retry_after_ms is None else {"retry-after-ms": str(self.retry_after_ms)}
            return Reply(status, fail_body or self.error_body(status, f"injected failure {status}"), None, headers)
        for bad in list(self.poison):
            if any(bad in s for s in strings_in(body)):
                return Reply(400, self.error_body(400, f"poisoned input: contains {bad!r}"))
        return self.route(path, body)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client closing a kept-alive connection is routine; anything else is a bug in the fake: show it.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _handler_for(fake: FakeHTTPServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the SDKs' connection pools expect

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            reply = fake._answer(self.path.split("?")[0], raw)
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            if reply.events is None:
                data = json.dumps(reply.body).encode()
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for event in reply.events:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")

        def log_message(self, format: str, *args: Any) -> None:  # quiet: pytest shows failures anyway
            pass

    return Handler
