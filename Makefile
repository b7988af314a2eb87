# The README's two commands: `make run` and `make test`. Both need nothing but Python 3.11+:
# they build .venv, and the code provisions an embedded PostgreSQL and a local Kafka-protocol
# broker unless DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS (TEST_* for the tests) point elsewhere.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: run test lint typecheck pytest bench-api bench-peers bench-relay bench-gauges bench-sse install clean client-types

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

run: $(STAMP)
	GENESIS_DEV=1 $(BIN)/genesis dev

test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest --cov --cov-report=term $(PYTEST_ARGS)

# The TypeScript client's types, regenerated from the API's OpenAPI document (no server needed); commit the result.
client-types: $(STAMP)
	$(BIN)/python -c 'import json, sys; from api.openapi import document; json.dump(document(), sys.stdout)' \
		> $(VENV)/openapi.json
	cd clients/typescript && npm ci --no-audit --no-fund --silent \
		&& GENESIS_OPENAPI=$(CURDIR)/$(VENV)/openapi.json npm run generate

bench-api: $(STAMP)
	$(BIN)/python -m tests.benchmarks.bench_api

# The peers (procrastinate) get a virtualenv of their own: none of their dependencies reach ours.
PEERS_VENV ?= $(HOME)/.cache/genesis/peers-venv
PEERS_STAMP := $(PEERS_VENV)/.installed-procrastinate-3

$(PEERS_STAMP):
	test -x $(PEERS_VENV)/bin/python || $(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install --quiet 'procrastinate>=3,<4' 'psycopg[binary,pool]'
	touch $@

bench-peers: $(STAMP) $(PEERS_STAMP)
	PEERS_PYTHON=$(PEERS_VENV)/bin/python $(BIN)/python -m tests.benchmarks.bench_peers

bench-relay: $(STAMP)
	$(BIN)/python -m tests.benchmarks.bench_relay

bench-gauges: $(STAMP)
	$(BIN)/python -m tests.benchmarks.bench_gauges

bench-sse: $(STAMP)
	$(BIN)/python -m tests.benchmarks.bench_sse

clean:
	rm -rf $(VENV) .dev .mypy_cache .ruff_cache .pytest_cache .coverage
