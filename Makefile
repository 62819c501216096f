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
DEMO_MIN_COUNT ?= 3
ROUND ?=
BENCH_REPORTS ?= 39000
SCALE_REPORTS ?= 200000
MLFLOW_PORT ?= 5000
AIRFLOW_PORT ?= 8080

.PHONY: venv demo test bench lint clean help mlflow airflow services

help:
	@echo "make demo   - build the venv if needed, run the pipeline on a synthetic round (or ROUND=path)"
	@echo "make test   - build the venv if needed, run the whole test suite"
	@echo "make services - install redis-server and PostgreSQL (apt-get) for the integration tests if missing"
	@echo "make bench  - benchmarks, results in bench/results.json and bench/results.md"
	@echo "make lint   - ruff"
	@echo "make airflow - Airflow (API server, scheduler, DAG processor, triggerer) on 127.0.0.1:\$$(AIRFLOW_PORT) with the hiericd DAGs and rounds page"
	@echo "make mlflow - MLflow server on 127.0.0.1:$(MLFLOW_PORT) over the catalog's store (runs, registry, artifacts)"

venv: $(STAMP)

# Re-installs only when the packaging files change.
$(STAMP): setup.cfg pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m hiericd_core.demo --reports $(DEMO_REPORTS) --seed $(DEMO_SEED) --min-count $(DEMO_MIN_COUNT) $(if $(ROUND),--round $(ROUND))

test: $(STAMP) services
	$(BIN)/python -m pytest -q --durations=15

# Servers that tests/test_services.py starts on loopback ports: Redis and PostgreSQL from Debian's packages
# when missing. Only where they cannot be installed (no root or no apt-get) do those tests skip, saying why.
services:
	@pkgs=""; command -v redis-server >/dev/null 2>&1 || pkgs="redis-server"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || pkgs="$$pkgs postgresql"; \
	if [ -z "$$pkgs" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing $$pkgs for the integration tests"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$pkgs; } \
	    || echo "could not install $$pkgs: tests/test_services.py will skip"; \
	else echo "$$pkgs missing and apt-get (as root) unavailable: tests/test_services.py will skip"; fi

bench: $(STAMP)
	$(BIN)/python bench/run.py --reports $(BENCH_REPORTS) --scale-reports $(SCALE_REPORTS)

# Airflow's four components (API server + UI, scheduler, DAG processor, triggerer) over the catalog's sqlite DB,
# each bound to 127.0.0.1: what `airflow standalone` runs, started here because standalone cannot keep the
# scheduler's and the triggerer's log servers off (they bind every interface and Airflow has no host setting
# for them); without them the UI reads task logs from $(HIERICD_HOME)/airflow/logs. Ctrl-C, or one of them
# exiting, stops all four.
# The login is admin, its password in $(HIERICD_HOME)/airflow/simple_auth_manager_passwords.json.generated.
airflow: $(STAMP)
	mkdir -p $(abspath $(HIERICD_HOME))/airflow $(abspath $(HIERICD_HOME))/incoming
	export PATH="$(CURDIR)/$(BIN):$$PATH" AIRFLOW_HOME=$(abspath $(HIERICD_HOME))/airflow \
	AIRFLOW__CORE__DAGS_FOLDER=$(CURDIR)/dags \
	AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=sqlite:///$(abspath $(HIERICD_HOME))/airflow/airflow.db \
	AIRFLOW__API__HOST=127.0.0.1 AIRFLOW__API__PORT=$(AIRFLOW_PORT) \
	AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST=127.0.0.1 \
	AIRFLOW__CORE__EXECUTION_API_SERVER_URL=http://127.0.0.1:$(AIRFLOW_PORT)/execution/ \
	AIRFLOW__CORE__PARALLELISM=4 AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG=2 AIRFLOW__API__WORKERS=1; \
	$(BIN)/airflow db migrate >/dev/null && \
	trap 'kill $$(jobs -p) 2>/dev/null; wait' EXIT && \
	{ $(BIN)/airflow scheduler --skip-serve-logs & \
	  $(BIN)/airflow dag-processor & \
	  $(BIN)/airflow triggerer --skip-serve-logs & \
	  $(BIN)/airflow api-server & \
	  wait -n; }

# The catalog's sqlite store and artifact folder, served; clients use MLFLOW_TRACKING_URI=http://127.0.0.1:$(MLFLOW_PORT).
mlflow: $(STAMP)
	mkdir -p $(abspath $(HIERICD_HOME))/mlflow/artifacts
	PATH="$(CURDIR)/$(BIN):$$PATH" MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(BIN)/mlflow server \
		--backend-store-uri sqlite:///$(abspath $(HIERICD_HOME))/mlflow/mlflow.db \
		--artifacts-destination $(abspath $(HIERICD_HOME))/mlflow/artifacts \
		--host 127.0.0.1 --port $(MLFLOW_PORT)

lint: $(STAMP)
	$(BIN)/ruff check $(wildcard hiericd_core tests bench scripts dags plugins)

clean:
	rm -rf var .pytest_cache
