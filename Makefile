# The two commands of the README: `make run` and `make test` (`make test-fast` for the fast lane).
# Both create the virtualenv (.venv, Python >= 3.11) and install the project first,
# with every extra: the worker side, the demo, the benchmarks and the dev tools.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

# The tests `make test-fast` selects (markers in pyproject.toml, tests/conftest.py).
FAST_LANE := not slow and not reliability and not real_store

# What `make lock` runs: uv, pinned, in a throwaway virtualenv of its own.
LOCK_TOOLS := .chromasync/tools
UV_VERSION := 0.13.9
# Extra flags for `uv pip compile`, e.g. `make lock LOCK_FLAGS=--upgrade`.
LOCK_FLAGS ?=
LOCK_COMPILE = $(LOCK_TOOLS)/bin/uv pip compile --quiet --python-version 3.11 --generate-hashes \
	--custom-compile-command "make lock" $(LOCK_FLAGS)

.PHONY: run test test-fast lint check-compose services tools clean lambda-zip lock cfn

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("chromasync needs Python >= 3.11, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[worker,demo,bench,dev]"
	touch $(STAMP)

## run: the main job on the embedded default (moto + embedded Chroma; no AWS, no Docker)
run: $(STAMP)
	$(BIN)/chromasync run --demo

## test: start what the tests need (redis-server on 127.0.0.1:6379), run every suite,
## then name the 15 slowest tests
test: $(STAMP) services tools
	$(BIN)/python -m pytest --durations=15

## test-fast: the pure and single-service tests, in-process, stores on their memory
## backend (under a minute); no whole system, workers, CLI processes, builds or linters
test-fast: $(STAMP) services
	$(BIN)/python -m pytest -m "$(FAST_LANE)"

## tools: dynalite (npm), the table stand-in of benchmarks/table_standin.py, when npm is
## here; without it the tests of the stand-in are skipped (they never reach a registry)
tools:
	@if command -v npm >/dev/null 2>&1; then \
		$(BIN)/python -c 'import benchmarks.table_standin as t; t.install()' >/dev/null; \
	else echo "npm not found: the dynalite stand-in's tests will be skipped" >&2; fi

## services: make sure redis-server answers on 127.0.0.1:6379 (moto is started by the tests)
services:
	@sh tests/services.sh

## check-compose: validate docker-compose.yml against the Compose specification (dclint, npm)
check-compose:
	@command -v npm >/dev/null 2>&1 || { echo "npm is needed for dclint: apt-get install -y npm" >&2; exit 1; }
	@test -x .chromasync/node/node_modules/.bin/dclint || npm install --silent --no-audit --no-fund --prefix .chromasync/node dclint@3 >/dev/null
	.chromasync/node/node_modules/.bin/dclint --quiet docker-compose.yml
	@echo "docker-compose.yml is valid against the Compose specification"

## lambda-zip: dist/chromasync-producer.zip, the Lambda handler with the producer's
## dependencies only (deploy/requirements/lambda.txt, for python3.11 x86_64)
lambda-zip: $(STAMP)
	$(BIN)/python deploy/lambda/build.py

## cfn: write deploy/iam/*.json (the source of truth) into deploy/cloudformation.yaml's
## policies; tests/test_cloudformation.py fails while the two differ
cfn:
	$(PYTHON) deploy/render.py

## lock: pin the image's and the Lambda's dependencies (CPython 3.11, Linux x86_64) from
## pyproject.toml; versions already pinned are kept unless LOCK_FLAGS=--upgrade
lock:
	@$(LOCK_TOOLS)/bin/uv --version 2>/dev/null | grep -q "^uv $(UV_VERSION) " || { \
		$(PYTHON) -m venv $(LOCK_TOOLS) && \
		$(LOCK_TOOLS)/bin/python -m pip install --quiet uv==$(UV_VERSION); }
	$(LOCK_COMPILE) --python-platform x86_64-manylinux_2_28 \
		pyproject.toml deploy/requirements/build.in --extra worker --extra demo --extra bench \
		--output-file deploy/requirements/image.txt
	$(LOCK_COMPILE) --python-platform x86_64-manylinux2014 \
		pyproject.toml --constraint deploy/requirements/image.txt \
		--output-file deploy/requirements/lambda.txt

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .chromasync .pytest_cache .mypy_cache .ruff_cache
