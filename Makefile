# Clickstream lakehouse: setup, the whole job, tests.
#   make run    set up everything (first time), then run the main job end to end
#   make test   set up everything (first time), then run the whole test suite
# Setup is incremental: each step leaves a stamp in $(DEPS)/stamps and is skipped
# while its inputs are unchanged.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
DEPS ?= $(or $(LAKEHOUSE_DEPS_DIR),$(CURDIR)/.deps)
VENV ?= $(CURDIR)/.venv
PY := $(VENV)/bin/python
STAMPS := $(DEPS)/stamps
PYTEST_ARGS ?=
# Test sessions run side by side (pytest-xdist), each with its own services: much of a
# streaming test is waiting on triggers and services, not computing.
TEST_WORKERS ?= 2

STEP := bash setup/step.sh $(STAMPS)

.PHONY: setup setup-steps venv spark-jars kafka-jars ferretdb superset dashboards chromium run test test-fast lint services-start services-stop services-status cluster-start cluster-stop cluster-status clean

setup: ## install Python deps, jars, FerretDB and Superset (side by side: downloads overlap builds)
	@$(MAKE) --no-print-directory -j4 setup-steps

setup-steps: venv spark-jars kafka-jars ferretdb superset

venv: ## the pinned Python packages (enough for `make lint` and `make test-fast`)
	@$(STEP) venv $(PY) requirements.txt -- bash -c '\
	  echo ">> Python packages (pinned, requirements.txt) into $(VENV)"; \
	  test -x $(PY) || python3 -m venv $(VENV); \
	  $(PY) -m pip install -q --disable-pip-version-check -r requirements.txt'

spark-jars:
	@$(STEP) spark-jars $(DEPS)/jars/spark setup/pom-spark.xml -- bash -c '\
	  echo ">> Delta Lake and Spark Kafka connector jars (Maven Central) into $(DEPS)/jars/spark"; \
	  rm -rf $(DEPS)/jars/spark; \
	  mvn -q -B -f setup/pom-spark.xml dependency:copy-dependencies -DoutputDirectory=$(DEPS)/jars/spark'

kafka-jars: | spark-jars  # after it: two Maven runs at once could both download an artifact they share into ~/.m2
	@$(STEP) kafka-jars $(DEPS)/jars/kafka setup/pom-kafka.xml -- bash -c '\
	  echo ">> Apache Kafka broker jars (Maven Central) into $(DEPS)/jars/kafka"; \
	  rm -rf $(DEPS)/jars/kafka; \
	  mvn -q -B -f setup/pom-kafka.xml dependency:copy-dependencies -DoutputDirectory=$(DEPS)/jars/kafka'

ferretdb:
	@$(STEP) ferretdb $(DEPS)/bin/ferretdb setup/ferretdb/main.go setup/ferretdb/go.mod setup/ferretdb/go.sum setup/ferretdb/build.sh \
	  $(wildcard setup/ferretdb/*.patch) -- bash -c '\
	  echo ">> FerretDB v1.24.2 (Go module proxy, plus the patches in setup/ferretdb) into $(DEPS)/bin"; \
	  bash setup/ferretdb/build.sh $(DEPS)'

SUPERSET_VENV := $(DEPS)/superset-venv

superset: ## Apache Superset in a virtual environment of its own (its SQLAlchemy 1.4 pin fights MLflow's 2.x)
	@$(STEP) superset $(SUPERSET_VENV)/bin/superset setup/superset-requirements.txt -- bash -c '\
	  echo ">> Apache Superset (pinned, setup/superset-requirements.txt) into $(SUPERSET_VENV)"; \
	  test -x $(SUPERSET_VENV)/bin/python || python3 -m venv $(SUPERSET_VENV); \
	  $(SUPERSET_VENV)/bin/python -m pip install -q --disable-pip-version-check -r setup/superset-requirements.txt'

dashboards: setup ## the SQL server and Superset with the dashboards of dashboards/; prints the address and login
	$(PY) -m lakehouse.dashboards start

chromium: ## Debian's headless Chromium and its driver, for the dashboards' browser test (tests/e2e/test_dashboards.py)
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo ">> chromium and chromium-driver (Debian packages) for the dashboards' browser test"; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; \
	  else \
	    echo "!! the dashboards' browser test needs Chromium: run 'sudo apt-get install chromium chromium-driver'"; \
	  fi; \
	fi

run: setup ## the main job, end to end, on the embedded defaults
	$(PY) -m lakehouse.pipeline $(RUN_ARGS)

test: setup chromium ## the whole test suite: unit, integration and end to end
	$(PY) -m pytest -n $(TEST_WORKERS) --durations=25 $(PYTEST_ARGS)

test-fast: venv ## unit tests only (no JVM, no services)
	$(PY) -m pytest -m "not integration and not e2e" $(PYTEST_ARGS)

lint: venv ## ruff on the Python, sqlfluff on the dbt SQL (.sqlfluff), as CI runs them
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/sqlfluff lint dbt_project

services-start: setup
	$(PY) -m lakehouse.services start

services-stop:
	$(PY) -m lakehouse.services stop

services-status:
	$(PY) -m lakehouse.services status

cluster-start: setup ## a standalone Spark cluster (a master, two workers) and three Kafka brokers on 127.0.0.1; prints SPARK_MASTER and KAFKA_BOOTSTRAP_SERVERS to export
	$(PY) -m lakehouse.cluster start

cluster-stop:
	$(PY) -m lakehouse.cluster stop

cluster-status:
	$(PY) -m lakehouse.cluster status

clean: services-stop ## remove the lakehouse data (keeps installed deps)
	rm -rf lakehouse-data output
