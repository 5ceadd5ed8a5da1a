# Two commands do all the set-up on a fresh machine:
#   make demo   - creates .venv if missing, installs everything, runs the end-to-end demo
#   make test   - the same set-up, then the whole test suite (what CI runs)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint typecheck bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[ml,dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/driftkeeper demo

test: $(STAMP)
	OPENBLAS_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 --dist loadfile -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: $(STAMP)
	OPENBLAS_NUM_THREADS=1 $(BIN)/python bench/bench_ingest.py

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
