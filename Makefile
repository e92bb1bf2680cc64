# The two commands of the README: `make up` and `make test`. Both set everything up
# first (virtualenv, the package, the system packages the stack needs).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: up test lint types unit system-packages bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

system-packages:
	./scripts/install-system-packages

up: $(STAMP) system-packages
	$(BIN)/sensorium up

test: $(STAMP) system-packages lint types
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

types: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP) system-packages
	mkdir -p bench-results
	$(BIN)/sensorium bench ingest --devices 10000 --messages 10 --json bench-results/ingest-10k.json
	$(BIN)/sensorium bench ingest --devices 1000 --messages 100 --json bench-results/ingest-1k.json
	$(BIN)/sensorium bench ingest --transport http --devices 1000 --messages 50 --json bench-results/ingest-http-1k.json
	$(BIN)/sensorium bench writer --devices 10000 --messages 10 --json bench-results/writer-10k.json

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
