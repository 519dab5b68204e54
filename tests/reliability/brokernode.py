"""A RabbitMQ node of the test's own, to stop and start without touching the broker everyone else uses.

The shared broker on 5672 serves other tests and helpers at the same time, so broker faults are played on a second
node: its own name, ports, data and log folders, Erlang cookie (a private HOME) and an empty plugin list. It runs
Debian's scripts from `/usr/lib/rabbitmq/bin` directly, because the `/usr/sbin` wrappers switch to the `rabbitmq`
user and read `/etc/rabbitmq`, whose listener is the shared node's port. Boot takes ~4 s, `start_app` ~1 s.

Ports: below the kernel's ephemeral range (see `harness.stable_port`: a port in it can be taken by a reconnecting
client while the node is stopped, and `start_app` then fails with eaddrinuse); RabbitMQ's command-line tools listen
on the distribution port + 10000 (up to + 10010), so those ranges (the shared node's 35672-35682) are avoided.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import uuid
from pathlib import Path

from tests.reliability.harness import stable_port

RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")
SHARED_CLI_PORTS = range(35672, 35683)


class NodeError(RuntimeError):
    """Raised when the node does not start or a `rabbitmqctl` command fails."""


class RabbitNode:
    """`start()`, then `url`; `stop_app()`/`start_app()` take the AMQP side down and up; `stop()` at the end."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.name = f"cmsrag-chaos-{uuid.uuid4().hex[:8]}@localhost"
        self.dist_port = stable_port(SHARED_CLI_PORTS)  # its CLI tools take dist_port + 10000 … + 10010
        self.port = stable_port(set(range(self.dist_port + 10000, self.dist_port + 10011)) | {self.dist_port})
        for sub in ("home", "mnesia", "log"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        (folder / "enabled_plugins").write_text("[].\n")
        (folder / "rabbitmq.conf").write_text(f"listeners.tcp.1 = 127.0.0.1:{self.port}\nloopback_users = none\n")
        (folder / "rabbitmq-env.conf").write_text("")
        self.pid_file = folder / "node.pid"

    @staticmethod
    def available() -> str | None:
        """None if this machine can run a node, else why not."""
        if not (RABBIT_BIN / "rabbitmq-server").exists() or shutil.which("erl") is None:
            return f"no RabbitMQ server scripts in {RABBIT_BIN}"
        return None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    def _env(self) -> dict[str, str]:
        f = self.folder
        return {**os.environ, "HOME": str(f / "home"), "RABBITMQ_NODENAME": self.name,
                "RABBITMQ_CONF_ENV_FILE": str(f / "rabbitmq-env.conf"),
                "RABBITMQ_CONFIG_FILE": str(f / "rabbitmq.conf"),
                "RABBITMQ_DIST_PORT": str(self.dist_port), "RABBITMQ_MNESIA_BASE": str(f / "mnesia"),
                "RABBITMQ_LOG_BASE": str(f / "log"), "RABBITMQ_PID_FILE": str(self.pid_file),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(f / "enabled_plugins"),
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}"}

    def ctl(self, *args: str, timeout: float = 90) -> str:
        """`rabbitmqctl -n <this node> ARGS`; NodeError with its output when it fails."""
        r = subprocess.run([str(RABBIT_BIN / "rabbitmqctl"), "-q", "-n", self.name, *args], env=self._env(),
                           capture_output=True, text=True, timeout=timeout, check=False)
        if r.returncode != 0:
            raise NodeError(f"rabbitmqctl {' '.join(args)} failed ({r.returncode}): {r.stdout}{r.stderr}".strip())
        return r.stdout

    def start(self) -> RabbitNode:
        subprocess.run([str(RABBIT_BIN / "rabbitmq-server"), "-detached"], env=self._env(), check=True,
                       capture_output=True, timeout=30)
        try:
            self.ctl("wait", "--timeout", "60", str(self.pid_file))
        except NodeError as exc:
            logs = "".join(p.read_text(errors="replace")[-2000:] for p in (self.folder / "log").glob("*.log"))
            self.kill()
            raise NodeError(f"{exc}\n{logs}") from exc
        return self

    def stop_app(self) -> None:
        """Stop RabbitMQ on the node (connections are closed, the port stops listening); the Erlang VM stays up."""
        self.ctl("stop_app")

    def start_app(self) -> None:
        self.ctl("start_app")

    def queue_depth(self, queue: str) -> int:
        for line in self.ctl("list_queues", "name", "messages", "--no-table-headers").splitlines():
            name, _, count = line.partition("\t")
            if name == queue:
                return int(count)
        return 0

    def stop(self) -> None:
        """Stop the node for good and delete its folder."""
        try:
            self.ctl("stop", timeout=60)
        except (NodeError, subprocess.TimeoutExpired):
            self.kill()
        shutil.rmtree(self.folder, ignore_errors=True)

    def kill(self) -> None:
        """The node's own VM only, by the pid it wrote."""
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(self.pid_file.read_text().strip()), 9)
