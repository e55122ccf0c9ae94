# Two commands do all the set-up on a fresh Debian 12 machine (root): `make up`, `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: up down status call test test-unit test-integration lint typecheck bench robustness fuzz deps clean

up: deps ## bring up the whole helpline (database, Asterisk, services, demo data)
	$(VENV)/bin/helpline up

down: ## stop the services and Asterisk
	$(VENV)/bin/helpline down

status:
	$(VENV)/bin/helpline status

call: ## place a demo call to 1076 (sipp from the trunk address)
	$(VENV)/bin/helpline call

test: deps ## the whole suite: unit, property, real PostgreSQL, real Asterisk with sipp
	$(PY) -m pytest

test-unit: $(STAMP)
	$(PY) -m pytest tests/unit

test-integration: deps
	$(PY) -m pytest tests/integration

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

bench: $(STAMP) ## protocol benchmarks against panoramisk (docs/capacity.md)
	$(PY) -m bench agi
	$(PY) -m bench ami

robustness: $(STAMP) ## hostile FastAGI peers while good calls run; fails if a criterion fails
	$(PY) -m bench robustness

FUZZ_RUNS ?= 100000
FUZZ_SECONDS ?= 120
fuzz: $(STAMP) ## every atheris target in fuzz/, FUZZ_RUNS inputs each (at most FUZZ_SECONDS)
	set -e; for target in fuzz/*.py; do echo "== $$target"; $(PY) $$target -atheris_runs=$(FUZZ_RUNS) -max_total_time=$(FUZZ_SECONDS); done

deps: $(STAMP) ## Python venv, Debian packages, the desk's browser libraries, a running PostgreSQL
	bash scripts/system-deps.sh
	bash scripts/web-deps.sh
	bash scripts/postgres.sh

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,fuzz]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis node_modules build/web
