# The two commands of the README: `make up` and `make test`. Both set everything up
# first (virtualenv, the package, the system packages the stack needs).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: up test lint types unit system-packages bench bench-full clean

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

# The default set (under 10 minutes here); `make bench-full` adds the large sizes.
bench: $(STAMP) system-packages
	mkdir -p bench-results
	$(BIN)/sensorium bench ingest --devices 10000 --messages 10 --json bench-results/ingest-10k.json --plot bench-results/ingest-10k.png
	$(BIN)/sensorium bench ingest --transport http --devices 1000 --messages 50 --json bench-results/ingest-http-1k.json --plot bench-results/ingest-http-1k.png
	$(BIN)/sensorium bench writer --devices 10000 --messages 10 --json bench-results/writer-10k.json --plot bench-results/writer-10k.png
	$(BIN)/sensorium bench scale --json bench-results/scale.json --plot bench-results/scale.png
	$(BIN)/sensorium bench query --json bench-results/query.json --plot bench-results/query.png
	$(BIN)/sensorium bench alerts --json bench-results/alerts.json

bench-full: $(STAMP) system-packages
	mkdir -p bench-results
	$(BIN)/sensorium bench scale --full --json bench-results/scale-full.json --plot bench-results/scale-full.png
	$(BIN)/sensorium bench query --full --json bench-results/query-full.json --plot bench-results/query-full.png

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
