"""A real Prometheus, with deploy/prometheus's scrape jobs and rules, scrapes the real services: the API and the
receiver under gunicorn (multiprocess metrics), a `cmsrag worker` with its metrics port, and RabbitMQ's
rabbitmq_prometheus plugin (:15692). After a search, a webhook and a document indexed with the fake embedder, its
HTTP API must show every target up, the events counted, the backlog gauges, every recording rule and alert
evaluated without error, and the outside names the dashboard relies on (test_monitoring_config.EXTERNAL).

The deployment's config is rewritten only where a test must differ: static targets on this machine instead of
compose DNS names, 1 s intervals, the rule file's absolute path. Job names and rules are the deployment's own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path

import requests
import yaml

from services.cli.app import App
from services.cli.indexing import wait_until_done
from shared.models import DocRef
from shared.settings import Settings
from tests.conftest import delete_queues, unavailable
from tests.integration.test_metrics import SECRET, free_port, signed, wait_for
from tests.integration.test_monitoring_config import EXTERNAL, PROMETHEUS_DIR

ROOT = Path(__file__).resolve().parents[2]
RABBITMQ_PROMETHEUS = "127.0.0.1:15692"


def service_env(pg_url: str, rabbitmq_url: str, tmp_path: Path) -> dict[str, str]:
    """A `files` site with one page (indexed with the fake embedder) and a WordPress site taking webhooks."""
    site = tmp_path / "html"
    site.mkdir()
    (site / "kettle.html").write_text("<html><head><title>Kettles</title></head><body><main><h1>Kettles</h1>"
                                      "<h2 id='descaling'>Descaling</h2><p>Descale the kettle with vinegar "
                                      "once a month.</p></main></body></html>")
    sites = [{"name": "docs", "kind": "files", "path": str(site), "url": "https://example.org/"},
             {"name": "blog", "kind": "wordpress", "url": "http://127.0.0.1:9", "webhook_secret": SECRET}]
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("CMSRAG_", "DATABASE_URL", "RABBITMQ_URL", "PROMETHEUS_MULTIPROC_DIR"))}
    return {**base, "DATABASE_URL": pg_url, "RABBITMQ_URL": rabbitmq_url, "CMSRAG_SITES": json.dumps(sites),
            "CMSRAG_EMBEDDER": "fake", "CMSRAG_DATA_DIR": str(tmp_path / "data"), "CMSRAG_LOG_LEVEL": "WARNING",
            "CMSRAG_QUEUE_PREFIX": f"prom{uuid.uuid4().hex[:8]}", "CMSRAG_RATE_PUBLIC": "100000/min,burst=10000",
            "CMSRAG_MIN_SIMILARITY": "0.0"}


@contextmanager
def process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A subprocess in a session of its own (gunicorn's workers go with it), its output in `log`."""
    with log.open("wb") as out:
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def gunicorn(app: str, port: int) -> list[str]:
    return [sys.executable, "-m", "gunicorn", "-c", "python:services.gunicorn_conf", "-w", "2", "-k", "gthread",
            "--threads", "2", "-b", f"127.0.0.1:{port}", "--log-level", "warning", app]


def prometheus_config(tmp_path: Path, targets: dict[str, str]) -> Path:
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text(encoding="utf-8"))
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config["rule_files"] = [str(PROMETHEUS_DIR / name) for name in config["rule_files"]]
    assert {job["job_name"] for job in config["scrape_configs"]} == set(targets), "every deployed job is scraped"
    for job in config["scrape_configs"]:
        for key in [k for k in job if k.endswith("_sd_configs") or k == "static_configs"]:
            del job[key]
        job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def query(base: str, promql: str) -> dict[str, float]:
    """An instant query: {labels but the name, as sorted JSON: value}."""
    r = requests.get(f"{base}/api/v1/query", params={"query": promql}, timeout=5)
    r.raise_for_status()
    return {json.dumps({k: v for k, v in s["metric"].items() if k != "__name__"}, sort_keys=True): float(s["value"][1])
            for s in r.json()["data"]["result"]}


def rule_health(base: str) -> dict[str, str]:
    """{rule name: "ok" | "unknown" (not evaluated yet) | the evaluation error}."""
    groups = requests.get(f"{base}/api/v1/rules", timeout=5).json()["data"]["groups"]
    return {rule["name"]: rule.get("lastError") or rule["health"] for group in groups for rule in group["rules"]}


def test_a_real_prometheus_scrapes_every_service_and_evaluates_the_rules(pg_url, rabbitmq_url, db, tmp_path):
    binary = shutil.which("prometheus")
    if binary is None:
        unavailable("prometheus", "install Debian's prometheus package (scripts/install-system-deps.sh)")
    try:
        requests.get(f"http://{RABBITMQ_PROMETHEUS}/metrics", timeout=5).raise_for_status()
    except requests.RequestException as exc:
        unavailable("rabbitmq_prometheus", f"{exc} (rabbitmq-plugins enable rabbitmq_prometheus)")
    assert binary is not None
    env = service_env(pg_url, rabbitmq_url, tmp_path)
    ports = {name: free_port() for name in ("api", "receiver", "worker", "prometheus")}
    targets = {"api": f"127.0.0.1:{ports['api']}", "receiver": f"127.0.0.1:{ports['receiver']}",
               "worker": f"127.0.0.1:{ports['worker']}", "rabbitmq": RABBITMQ_PROMETHEUS}
    prom = f"http://127.0.0.1:{ports['prometheus']}"
    api, receiver = f"http://{targets['api']}", f"http://{targets['receiver']}"
    app = App(Settings.from_env(env))
    with ExitStack() as stack:
        stack.callback(delete_queues, rabbitmq_url, env["CMSRAG_QUEUE_PREFIX"])
        stack.callback(app.close)
        stack.enter_context(process(gunicorn("services.api.wsgi:app", ports["api"]), env, tmp_path / "api.log"))
        stack.enter_context(process(gunicorn("services.ingest.wsgi:app", ports["receiver"]), env,
                                    tmp_path / "receiver.log"))
        stack.enter_context(process([sys.executable, "-m", "services.cli", "worker", "--metrics-port",
                                     str(ports["worker"])], env, tmp_path / "worker.log"))
        stack.enter_context(process([binary, f"--config.file={prometheus_config(tmp_path, targets)}",
                                     f"--storage.tsdb.path={tmp_path / 'tsdb'}", "--log.level=warn",
                                     f"--web.listen-address=127.0.0.1:{ports['prometheus']}"], env,
                                    tmp_path / "prometheus.log"))
        try:
            run_traffic_and_check(app, env, api, receiver, prom, targets)
        except BaseException:
            for log in sorted(tmp_path.glob("*.log")):
                print(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}")
            raise


def answers(url: str) -> bool:
    return requests.get(url, timeout=2).ok


def run_traffic_and_check(app: App, env: dict[str, str], api: str, receiver: str, prom: str,
                          targets: dict[str, str]) -> None:
    for url in (f"{api}/readyz", f"{receiver}/readyz", f"http://{targets['worker']}/metrics"):
        wait_for(partial(answers, url), 60, url)
    all_up = {json.dumps({"instance": t, "job": j}, sort_keys=True): 1.0 for j, t in targets.items()}
    # Prometheus starts scraping a few seconds after it starts: traffic before its first scrape of a target would
    # be in that first sample, and no rate() could see it
    wait_for(lambda: query(prom, "up") == all_up, 30, "a first scrape of every target")

    assert requests.post(f"{api}/v1/search", json={"query": "descale"}, timeout=10).status_code == 200
    # scraped before the second search, so that rate() sees the counter go up (a new series' first value is not
    # an increase to rate())
    searches = 'sum(cmsrag_http_request_duration_seconds_count{service="api", endpoint="/v1/search"})'
    wait_for(lambda: query(prom, searches) == {"{}": 1.0}, 10, "the first search scraped")
    body = {"event": "deleted", "id": "posts:5"}  # removed without fetching: the CMS need not exist
    assert requests.post(f"{receiver}/webhooks/wordpress/blog", timeout=10, **signed(body)).status_code == 202
    app.queue.request(DocRef("docs", "kettle.html"))  # what `cmsrag index` does: counted as freshness lag
    assert wait_until_done(app, "docs", timeout=30, progress=False)
    assert wait_until_done(app, "blog", timeout=30, progress=False)
    hits = requests.post(f"{api}/v1/search", json={"query": "descale the kettle"}, timeout=10).json()
    assert hits["results"], "the indexed page is found"

    documents = f"{env['CMSRAG_QUEUE_PREFIX']}.documents"
    expected = {
        "up": ("up", all_up),
        "searches": ('sum(cmsrag_http_request_duration_seconds_count{service="api", endpoint="/v1/search", '
                     'status_class="2xx"})', {"{}": 2.0}),
        "webhook": ('sum by (site, event, outcome) (cmsrag_webhooks_total)',
                    {json.dumps({"event": "deleted", "outcome": "accepted", "site": "blog"}, sort_keys=True): 1.0}),
        "documents": ('sum by (site, action) (cmsrag_documents_total)',
                      {json.dumps({"action": a, "site": s}, sort_keys=True): 1.0
                       for s, a in (("docs", "indexed"), ("blog", "absent"))}),
        "freshness": ('sum by (site) (cmsrag_freshness_lag_seconds_count)', {'{"site": "docs"}': 1.0}),
        # recording rules, evaluated by this Prometheus from what it scraped
        "queue depth": (f'queue_state:cmsrag_queue_messages:max{{queue="{documents}"}}',
                        {json.dumps({"queue": documents, "state": s}, sort_keys=True): 0.0
                         for s in ("ready", "delayed", "dead")}),
        "pending": ('site:cmsrag_pending_documents:max', {'{"site": "blog"}': 0.0, '{"site": "docs"}': 0.0}),
    }
    deadline, seen = time.monotonic() + 20, {}
    while time.monotonic() < deadline:
        seen = {name: query(prom, promql) for name, (promql, _) in expected.items()}
        if all(seen[name] == want for name, (_, want) in expected.items()):
            break
        time.sleep(0.5)
    assert seen == {name: want for name, (_, want) in expected.items()}

    rate = wait_for(lambda: query(prom, 'service_endpoint_status_class:cmsrag_http_requests:rate5m{service="api", '
                                        'endpoint="/v1/search", status_class="2xx"} > 0'), 15, "a request rate")
    assert len(rate) == 1
    health = wait_for(lambda: (h := rule_health(prom)) and "unknown" not in h.values() and h, 15, "rules evaluated")
    assert set(health.values()) == {"ok"}, health
    assert len(health) == sum(len(g["rules"]) for g in yaml.safe_load(
        (PROMETHEUS_DIR / "alerts.yml").read_text(encoding="utf-8"))["groups"])
    names = query(prom, "count by (name) (label_replace({__name__=~\"" + "|".join(sorted(EXTERNAL)) +
                  "\"}, \"name\", \"$1\", \"__name__\", \"(.*)\"))")
    assert {json.loads(k)["name"] for k in names} == EXTERNAL, "the outside names the dashboard reads exist"
    assert query(prom, "ALERTS") == {}, "on a healthy system no alert is even pending"
