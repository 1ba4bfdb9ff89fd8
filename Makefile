# The two commands a user needs: `make test` (lint, types, every test) and `make demo`.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SOURCES := contracts chassis services tests bench tools scripts

.PHONY: test install services tools contract-check alert-rules layers sizes lint typecheck pytest asyncapi alerts-doc demo demo-stop chaos bench clean
.PHONY: audit lock compose-test

test: install services tools contract-check alert-rules layers sizes lint typecheck audit pytest

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

services:
	@bash scripts/ensure-services.sh

tools:
	@bash scripts/ensure-tools.sh

# The contract documents through the official validators: contracts/asyncapi.yaml through
# @asyncapi/parser (Node, pinned in tools/contract-check), the ledger's /openapi.json through
# openapi-spec-validator. Fails on a document a subscriber's tools would refuse.
contract-check: install tools
	@bash tools/contract-check/install.sh
	node tools/contract-check/check-asyncapi.mjs contracts/asyncapi.yaml
	$(BIN)/python tools/contract-check/check_openapi.py

# The Prometheus alert rules shipped in deploy/prometheus: valid, and doing what their unit
# tests say (promtool, from Debian's prometheus package).
alert-rules: tools
	cd deploy/prometheus && promtool check rules alerts.yml && promtool test rules alerts.test.yml

demo: install services
	@bash scripts/demo.sh

demo-stop:
	@bash scripts/demo-stop.sh

# The layering (.importlinter): services never import each other, contracts imports neither
# chassis nor services, the chassis imports neither contracts nor services.
layers: install
	$(BIN)/lint-imports --no-cache

# No product module over 300 lines, no function over 60.
sizes: install
	$(BIN)/python scripts/check_sizes.py

lint: install
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/ruff format --check $(SOURCES)

typecheck: install
	$(BIN)/mypy $(SOURCES)

pytest: install services
	$(BIN)/pytest $(PYTEST_ARGS)

# The reliability campaign at full scale (~7 min on a quiet 2-core machine): real restarts of RabbitMQ and Postgres.
chaos: install services
	$(BIN)/python -m tests.chaos --scale full --write-doc docs/reliability.md

# The benchmarks (~35 min on a quiet 2-core machine); not part of `make test` (a smoke
# version of them is). Exits 1 when a goal is missed or a stage crashes. Each stage also
# runs alone: python -m bench --only relay ingest …
bench: install services tools
	$(BIN)/python -m bench

# The locked dependencies (requirements.lock: what the image installs) against PyPI's
# advisories. Fails on a known vulnerability; says WARNING, loudly, for every package the
# advisory source did not answer for (AUDIT_STRICT=1 makes that fail too).
audit: install
	$(BIN)/python scripts/audit.py requirements.lock

# Refreshes requirements.lock from pyproject.toml's ranges (plus the build backend, so the
# image's `pip install --no-build-isolation` needs nothing the lock does not pin): the newest
# versions in range, every file's hash, markers for every Python the project supports.
lock: install
	printf 'hatchling>=1.25\n' | $(BIN)/uv pip compile --native-tls --quiet pyproject.toml - \
		--universal --python-version 3.11 --generate-hashes \
		--custom-compile-command "make lock" -o requirements.lock

# The README's Docker quickstart on a real Docker engine (~10-15 min; root; see
# tests/compose/README.md): build, up, a run, stop/kill/restart during runs, down and up again,
# nothing left behind. Starts (and stops) its own dockerd and builds the base images' stand-ins
# when they are missing.
compose-test: install
	$(BIN)/python -m tests.compose.scenario

asyncapi: install
	$(BIN)/python -m contracts asyncapi

# docs/alerts.md from the alert truth table that tests/e2e/test_alert_truth_table.py plays.
alerts-doc: install
	$(BIN)/python -m tests.alerts

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache var
