# Everything a newcomer needs: `make demo`, `make test`. Both create .venv and install into it.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SPARK_STAMP := $(VENV)/.spark-installed
export RETENTION_PROJECT_DIR := $(CURDIR)

.PHONY: install install-spark demo test lint format docs bench bench-days dev clean

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c requirements.lock -e ".[dev]"
	# the dbt manifest Dagster loads its assets from (production: the same step in the image build)
	RETENTION_DATA_DIR=$${RETENTION_DATA_DIR:-data} $(BIN)/dbt parse --quiet --profiles-dir . --target-path target
	# the parse a data directory's first dbt command starts from (retention.dbt.seed_parse)
	$(BIN)/python -c "from retention.dbt import save_seed_parse; save_seed_parse()"
	@touch $@

install: $(STAMP)  ## create .venv and install the pinned environment

# the Spark target (pyspark, about 700 MB): only `make test` and Spark users need it
$(SPARK_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -c requirements.lock -e ".[dev,spark]"
	@touch $@

install-spark: $(SPARK_STAMP)  ## add the Spark target's packages to .venv

demo: $(STAMP)  ## generate sample data (if landing is empty) and run the whole pipeline
	$(BIN)/retention demo

# two pytest-xdist workers, a test module at a time on each (module fixtures are built once;
# the session ones once per worker); PYTEST_WORKERS=0 runs everything in one process
test: $(STAMP) $(SPARK_STAMP)  ## the whole test suite (PostgreSQL tests need a server: see .ci/run)
	$(BIN)/python -m pytest -n $(or $(PYTEST_WORKERS),2) --dist loadfile

lint: $(STAMP)  ## ruff and sqlfluff
	$(BIN)/ruff check retention orchestration tests benchmarks models
	$(BIN)/ruff format --check retention orchestration tests benchmarks models
	mkdir -p data && $(BIN)/sqlfluff lint models tests/dbt

format: $(STAMP)
	$(BIN)/ruff format retention orchestration tests benchmarks models
	$(BIN)/ruff check --fix retention orchestration tests benchmarks models

docs: $(STAMP)  ## dbt docs generate (needs a built warehouse: run `make demo` first)
	RETENTION_DATA_DIR=$${RETENTION_DATA_DIR:-$(CURDIR)/data} $(BIN)/dbt docs generate --profiles-dir . \
	  --target-path $${RETENTION_DATA_DIR:-$(CURDIR)/data}/dbt/target

bench: $(STAMP)  ## benchmarks at realistic scale (see benchmarks/); CUSTOMERS=100000 for less
	$(BIN)/python benchmarks/bench_clv.py
	$(BIN)/python benchmarks/bench.py --customers $(or $(CUSTOMERS),1000000)

bench-days: $(STAMP)  ## the daily job day after day (benchmarks/bench_days.py); DAYS=14 by default
	$(BIN)/python -m benchmarks.bench_days --customers $(or $(CUSTOMERS),1000000) --days $(or $(DAYS),14)

dev: $(STAMP)  ## Dagster UI on http://localhost:3000 (local storage under .dagster/)
	mkdir -p .dagster && DAGSTER_HOME=$(CURDIR)/.dagster OPENBLAS_NUM_THREADS=1 $(BIN)/dagster dev -m orchestration.definitions

clean:
	rm -rf $(VENV) target logs data/dbt .pytest_cache
