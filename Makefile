# Quick start: `make demo` (the main job) and `make test` (the whole suite).
# Both create or refresh the local virtual environment in .venv by themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup test demo bench lint typecheck clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

lint: setup
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

typecheck: setup
	$(BIN)/mypy

test: setup lint typecheck
	$(BIN)/pytest -q -p no:cacheprovider

demo: setup
	$(BIN)/dmabuf-model demo

bench: setup
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) out .mypy_cache .ruff_cache
