"""Real processes the reliability tests own: `cmsrag` workers and commands, the receiver under gunicorn.

Each process gets its whole configuration from an environment built here (`child_env`), exactly as a deployment
passes it, so the code under test reads `Settings.from_env()` like in production. Workers log JSON to a file of
their own; the tests wait on those lines (`worker_started`) instead of sleeping, and read them after a failure.
Every process is started in a session of its own, so `kill()` reaches it (and only it) by its process group.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Container, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from shared.settings import PROJECT_ROOT

T = TypeVar("T")
OWN_PREFIXES = ("CMSRAG_", "DATABASE_URL", "RABBITMQ_URL", "OPENAI_", "PROMETHEUS_MULTIPROC_DIR")


def child_env(variables: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without any cmsrag setting of its own, plus `variables`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(OWN_PREFIXES)}
    return {**base, **variables}


def wait_for(check: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll `check` until it returns something true; that value, or AssertionError naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def log_events(path: Path) -> list[dict[str, Any]]:
    """The JSON log lines of a process (library lines in plain text are skipped)."""
    events = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("{"):
            with contextlib.suppress(ValueError):  # a line cut short by kill -9
                events.append(json.loads(line))
    return events


def stable_port(avoid: Container[int] = ()) -> int:
    """A free port below the kernel's ephemeral range (from 32768 by default), for a server a test stops and starts.

    While such a server is down, a client reconnecting to it can be handed that very port as its own source port
    (a TCP self-connection), and the server then fails to start again with "address in use"; ports the kernel
    never hands out to clients are safe from that."""
    low, _ = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    rng = random.Random()
    while True:
        port = rng.randrange(low // 2, low)
        if port in avoid:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port


class Worker:
    """`cmsrag worker` as a child process: start, wait until it consumes, kill or stop it, read its exit code."""

    def __init__(self, env: Mapping[str, str], log: Path, threads: int = 2) -> None:
        self.log = log
        self._terminated = False
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "services.cli", "worker", "--threads", str(threads), "--metrics-port", "0"],
                cwd=PROJECT_ROOT, env=dict(env), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        return [e for e in log_events(self.log) if name is None or e.get("event") == name]

    def count(self, text: str) -> int:
        """Lines of its log containing `text` (dramatiq's own lines are plain text, e.g. "Failed to process")."""
        return sum(text in line for line in self.log.read_text(encoding="utf-8", errors="replace").splitlines())

    def wait_ready(self, timeout: float = 60) -> Worker:
        def started() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited with {self.process.returncode} before it started:\n{self.tail()}")
            return bool(self.events("worker_started"))

        wait_for(started, timeout, "the worker to start", interval=0.1)
        return self

    def signal(self, sig: int) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig)

    def kill(self) -> None:
        """kill -9: no clean-up of any kind, as when the machine or the OOM killer takes the process."""
        self.signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def terminate(self) -> None:
        """SIGTERM, once: a second one landing while Python exits would take the default action (exit code -15)."""
        if not self._terminated:
            self._terminated = True
            self.signal(signal.SIGTERM)

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, then the exit code once it has finished its in-flight messages."""
        self.terminate()
        return self.process.wait(timeout=timeout)

    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


class Workers:
    """The workers of one test; whatever is still running at the end is killed (a test may fail half-way)."""

    def __init__(self, env: Mapping[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.started: list[Worker] = []

    def start(self, threads: int = 2, wait: bool = True) -> Worker:
        worker = Worker(self.env, self.log_dir / f"worker-{len(self.started) + 1}.log", threads)
        self.started.append(worker)
        return worker.wait_ready() if wait else worker

    def running(self) -> list[Worker]:
        return [w for w in self.started if w.alive()]

    def close(self) -> None:
        for worker in self.started:
            if worker.alive():
                worker.kill()


class Faults(threading.Thread):
    """Plays a fault `script` beside the traffic. If it breaks (a broker that will not come back), `on_error` lets
    the traffic give up at once, and `check()` raises the script's error instead of a timeout elsewhere."""

    def __init__(self, script: Callable[[], None], on_error: Callable[[], None] = lambda: None) -> None:
        super().__init__(name="faults", daemon=True)
        self.script, self.on_error = script, on_error
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self.script()
        except BaseException as exc:
            self.error = exc
            self.on_error()

    def check(self, timeout: float = 120) -> None:
        self.join(timeout=timeout)
        if self.error is not None:
            raise AssertionError(f"the fault script failed: {self.error}") from self.error
        assert not self.is_alive(), "the fault script is still running"


def cmsrag(env: Mapping[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run one `cmsrag` command to completion (e.g. `reconcile blog --json`)."""
    return subprocess.run([sys.executable, "-m", "services.cli", *args], cwd=PROJECT_ROOT, env=dict(env),
                          capture_output=True, text=True, timeout=timeout, check=False)


@contextmanager
def receiver(env: Mapping[str, str], *, workers: int = 2, threads: int = 4) -> Iterator[str]:
    """The webhook receiver under gunicorn, as in production; yields its base URL."""
    from bench.common import gunicorn

    with gunicorn("services.ingest.wsgi:app", dict(env), workers=workers, threads=threads) as url:
        yield url
