# hiericd — every target that needs the venv builds it first.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HIERICD_HOME ?= $(CURDIR)/var
export MLFLOW_DISABLE_TELEMETRY := true
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export TOKENIZERS_PARALLELISM := false

DEMO_REPORTS ?= 2000
DEMO_SEED ?= 7
ROUND ?=
BENCH_REPORTS ?= 39000

.PHONY: venv demo test bench lint clean help

help:
	@echo "make demo   - build the venv if needed, run the pipeline on a synthetic round (or ROUND=path)"
	@echo "make test   - build the venv if needed, run the whole test suite"
	@echo "make bench  - benchmarks, results in bench/results.json and bench/results.md"
	@echo "make lint   - ruff"

venv: $(STAMP)

# Re-installs only when the packaging files change.
$(STAMP): setup.cfg pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m hiericd_core.demo --reports $(DEMO_REPORTS) --seed $(DEMO_SEED) $(if $(ROUND),--round $(ROUND))

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python bench/run.py --reports $(BENCH_REPORTS)

lint: $(STAMP)
	$(BIN)/ruff check $(wildcard hiericd_core tests bench scripts dags plugins)

clean:
	rm -rf var .pytest_cache
