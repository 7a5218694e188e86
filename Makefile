# The two commands of the README: `make run` and `make test`.
# Both create the virtualenv (.venv, Python >= 3.11) and install the project first.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test test-fast lint services clean

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

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .chromasync .pytest_cache .mypy_cache .ruff_cache
