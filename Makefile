# The two commands of the README: `make run` and `make test`.
# Both create the virtualenv (.venv, Python >= 3.11) and install the project first.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint check-compose services clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("chromasync needs Python >= 3.11, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

## run: the main job on the embedded default (moto + embedded Chroma; no AWS, no Docker)
run: $(STAMP)
	$(BIN)/chromasync run --demo

## test: start what the tests need (redis-server on 127.0.0.1:6379), run every suite
test: $(STAMP) services
	$(BIN)/python -m pytest

## services: make sure redis-server answers on 127.0.0.1:6379 (moto is started by the tests)
services:
	@sh tests/services.sh

## check-compose: validate docker-compose.yml against the Compose specification (dclint, npm)
check-compose:
	@command -v npm >/dev/null 2>&1 || { echo "npm is needed for dclint: apt-get install -y npm" >&2; exit 1; }
	@test -x .chromasync/node/node_modules/.bin/dclint || npm install --silent --no-audit --no-fund --prefix .chromasync/node dclint@3 >/dev/null
	.chromasync/node/node_modules/.bin/dclint --quiet docker-compose.yml
	@echo "docker-compose.yml is valid against the Compose specification"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .chromasync .pytest_cache .mypy_cache .ruff_cache
