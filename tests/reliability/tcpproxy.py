"""A small TCP proxy for network faults between two of our processes (e.g. the receiver and RabbitMQ).

Toxiproxy is a Go binary that neither PyPI nor Debian ships here, so this is the part of it the suite needs, in
threads: clients connect to `proxy.port`, each connection is piped to `upstream`, and the test can at any moment

- `cut()`: reset every open connection (a NAT or load balancer dropping its state); new ones still work;
- `refuse(True)`: reset new connections at once (the far side is unreachable) until `refuse(False)`;
- `stall(True)`: stop moving bytes in both directions, connections left open (a partition: TCP keeps the data
  and retransmits, so what was held back flows again after `stall(False)`, unless a side timed out first);
- `delay = seconds`: hold each piece of data back that long (a slow link).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from typing import Self

SO_LINGER_RESET = struct.pack("ii", 1, 0)  # close() sends RST instead of FIN


class TcpProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.delay = 0.0
        self.connections_made = 0
        self._flowing = threading.Event()
        self._flowing.set()
        self._refusing = False
        self._closed = False
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, name="tcpproxy-accept", daemon=True).start()

    # -- faults -------------------------------------------------------------------------------------------
    def cut(self) -> int:
        """Reset every open connection; returns how many pairs were cut."""
        with self._lock:
            doomed = list(self._sockets)
            self._sockets.clear()
        for sock in doomed:
            _reset(sock)
        return len(doomed) // 2

    def refuse(self, on: bool) -> None:
        self._refusing = on
        if on:
            self.cut()

    def stall(self, on: bool) -> None:
        if on:
            self._flowing.clear()
        else:
            self._flowing.set()

    def heal(self) -> None:
        """Back to a healthy link: no refusal, no stall, no delay."""
        self._refusing = False
        self.delay = 0.0
        self._flowing.set()

    # -- life cycle ----------------------------------------------------------------------------------------
    def close(self) -> None:
        self._closed = True
        self._flowing.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        self.cut()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the pipes -----------------------------------------------------------------------------------------
    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._refusing:
                _reset(client)
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                self._sockets |= {client, server}
                self.connections_made += 1
            for src, dst in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(src, dst), name="tcpproxy-pipe", daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        src.settimeout(0.1)
        try:
            while not self._closed:
                self._flowing.wait()
                try:
                    data = src.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    break
                if self.delay:
                    time.sleep(self.delay)
                self._flowing.wait()  # a stall that began while this piece was read holds it back too
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._sockets -= {src, dst}
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    sock.close()


def _reset(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, SO_LINGER_RESET)
    with contextlib.suppress(OSError):
        sock.close()
