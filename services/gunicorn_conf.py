"""gunicorn settings for the receiver and the API: Prometheus metrics that stay right across worker processes.

    gunicorn -c python:services.gunicorn_conf -k gthread --threads 8 -w 4 services.api.wsgi:app
    gunicorn -c python:services.gunicorn_conf -w 2 services.ingest.wsgi:app

Each gunicorn worker is a process with its own metric values, and a scrape reaches only one of them. In
prometheus_client's multiprocess mode each process writes its values to files in `PROMETHEUS_MULTIPROC_DIR`
and `/metrics` sums every file, so any worker answers for all of them. This file makes that hold:

- the directory is chosen here (a fresh temporary one unless `PROMETHEUS_MULTIPROC_DIR` is set), before any
  worker imports prometheus_client, which picks its storage once, at import;
- it is emptied when the master starts: files left by an earlier run would add that run's counts again;
- `child_exit` marks a worker dead. Its counters and histograms stay (a recycled or crashed worker's requests
  still happened), only its live gauges go: a worker killed mid-request leaves no request "in progress".

Give every gunicorn master a directory of its own (two servers sharing one would report each other's requests).
A module rather than a `gunicorn.conf.py` file, so it ships in the package and the image: `python:` loads it.

Shutdown: on SIGTERM gunicorn stops accepting and lets the requests in flight finish for `graceful_timeout`
seconds, then kills its workers. Its 30 s default is too short for a streamed answer (`/v1/ask`, SSE): the stream
lasts until the model's last token (up to `CMSRAG_LLM_MAX_TOKENS`, and the SDK waits up to `CMSRAG_LLM_TIMEOUT`,
60 s, for a slow reply), so 60 s here. The platform's grace period must be longer still: docker-compose.yml
`stop_grace_period: 75s`, Kubernetes `terminationGracePeriodSeconds: 75` (a 5 s `preStop` pause while the load
balancer forgets the pod, these 60 s, then slack). `--graceful-timeout` on the command line still wins.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

graceful_timeout = 60
# gunicorn >= 25.1 opens a control socket (for `gunicornc`) under $HOME by default; in the containers the root
# filesystem is read-only, so it would only log a warning at every start. Nothing here uses it. (Older gunicorns
# ignore the unknown setting.)
control_socket_disable = True

if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="cmsrag-metrics-")


def on_starting(server: Any) -> None:
    path = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
