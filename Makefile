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

STEP := bash setup/step.sh $(STAMPS)

.PHONY: setup venv spark-jars kafka-jars ferretdb run test test-fast lint services-start services-stop services-status clean

setup: venv spark-jars kafka-jars ferretdb ## install Python deps, jars and FerretDB

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

kafka-jars:
	@$(STEP) kafka-jars $(DEPS)/jars/kafka setup/pom-kafka.xml -- bash -c '\
	  echo ">> Apache Kafka broker jars (Maven Central) into $(DEPS)/jars/kafka"; \
	  rm -rf $(DEPS)/jars/kafka; \
	  mvn -q -B -f setup/pom-kafka.xml dependency:copy-dependencies -DoutputDirectory=$(DEPS)/jars/kafka'

ferretdb:
	@$(STEP) ferretdb $(DEPS)/bin/ferretdb setup/ferretdb/main.go setup/ferretdb/go.mod setup/ferretdb/go.sum setup/ferretdb/build.sh \
	  $(wildcard setup/ferretdb/*.patch) -- bash -c '\
	  echo ">> FerretDB v1.24.2 (Go module proxy, plus the patches in setup/ferretdb) into $(DEPS)/bin"; \
	  bash setup/ferretdb/build.sh $(DEPS)'

run: setup ## the main job, end to end, on the embedded defaults
	$(PY) -m lakehouse.pipeline $(RUN_ARGS)

test: setup ## the whole test suite: unit, integration and end to end
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: venv ## unit tests only (no JVM, no services)
	$(PY) -m pytest -m "not integration and not e2e" $(PYTEST_ARGS)

lint: venv ## ruff, as CI runs it
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

services-start: setup
	$(PY) -m lakehouse.services start

services-stop:
	$(PY) -m lakehouse.services stop

services-status:
	$(PY) -m lakehouse.services status

clean: services-stop ## remove the lakehouse data (keeps installed deps)
	rm -rf lakehouse-data output
