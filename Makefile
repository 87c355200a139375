# Two commands set everything up on a fresh machine with Python 3.11:
#   make refresh   materialize the catalog offline from the bundled snapshot and print what it did
#   make test      lint and run the whole test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# The local instance: dagster.yaml here, and everything it stores under this folder (see README.md).
export DAGSTER_HOME := $(CURDIR)

.PHONY: install refresh test lint dev snapshot benchmark

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --constraint constraints.txt --editable '.[dev]'
	touch $@

refresh: install
	GENFEED_OFFLINE=1 $(BIN)/genfeed-catalog refresh

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/pytest -n 2 --dist loadfile

dev: install
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

snapshot: install
	$(BIN)/python scripts/build_snapshot.py

benchmark: install
	$(BIN)/python scripts/benchmark.py
