# Two commands for a newcomer: `make run` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
# make run is development: its settings unless DJANGO_SETTINGS_MODULE names others (manage.py refuses to guess
# when DATABASE_URL names a database server).
DEV := DJANGO_SETTINGS_MODULE=$${DJANGO_SETTINGS_MODULE:-config.settings.dev}

.PHONY: venv run test lint format bench clean

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	touch $(STAMP)

venv: $(STAMP)

## run: migrate, load the demo data and serve http://127.0.0.1:8000 (SQLite, in-process tasks by default)
run: venv
	mkdir -p var
	$(DEV) $(PY) manage.py migrate --noinput
	$(DEV) $(PY) manage.py load_demo
	$(DEV) $(PY) manage.py runserver $(HOST):$(PORT)

## test: lint, the layer contracts (pyproject.toml), Django checks, migrations check and the whole suite (the
## OpenAPI schema is validated by a test)
test: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	DJANGO_SETTINGS_MODULE=config.settings.test $(PY) manage.py check
	DJANGO_SETTINGS_MODULE=config.settings.test $(PY) manage.py makemigrations --check --dry-run
	$(PY) -m pytest $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

## bench: API throughput and latency (gunicorn, PostgreSQL and SQLite), the audit log, and page server times
## (see bench/README.md); BENCH_ARGS go to bench/registry.py
bench: venv
	$(PY) bench/registry.py $(BENCH_ARGS)
	$(PY) bench/audit.py
	$(PY) bench/pages.py

clean:
	rm -rf $(VENV) var
