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

.PHONY: venv run serve test lint format bench clean

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

## serve: the production processes of the Procfile (gunicorn, a Celery worker, beat) with honcho, production
## settings, after migrate. Needs DATABASE_URL (PostgreSQL), CELERY_BROKER_URL (Redis), DJANGO_SECRET_KEY or
## DJANGO_SECRET_KEY_FILE, the audit signing key at AUDIT_SIGNING_KEY_FILE and the witness directory
## AUDIT_WITNESS_DIR (docs/operations.md, "The production run"); it stops with the list of what is missing.
## PORT (8000) is gunicorn's port on 127.0.0.1.
SERVE_ENV := DJANGO_SETTINGS_MODULE=$${DJANGO_SETTINGS_MODULE:-config.settings.base} \
	PROMETHEUS_MULTIPROC_DIR=$${PROMETHEUS_MULTIPROC_DIR:-$(CURDIR)/var/prometheus}
serve: venv
	@missing=""; \
	[ -n "$$DATABASE_URL" ] || missing="$$missing DATABASE_URL"; \
	[ -n "$$CELERY_BROKER_URL" ] || missing="$$missing CELERY_BROKER_URL"; \
	[ -n "$$DJANGO_SECRET_KEY$$DJANGO_SECRET_KEY_FILE" ] || missing="$$missing DJANGO_SECRET_KEY(_FILE)"; \
	[ -n "$$AUDIT_WITNESS_DIR" ] || missing="$$missing AUDIT_WITNESS_DIR"; \
	if [ -n "$$missing" ]; then \
	  echo "make serve: set$$missing (see docs/operations.md, The production run)" >&2; exit 2; \
	fi
	mkdir -p var
	@# The metrics files of the previous run's processes are not this run's (prometheus_client multiprocess).
	$(SERVE_ENV) sh -c 'rm -rf "$$PROMETHEUS_MULTIPROC_DIR" && mkdir -p "$$PROMETHEUS_MULTIPROC_DIR"'
	$(SERVE_ENV) $(PY) manage.py migrate --noinput
	$(SERVE_ENV) PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/honcho start -f Procfile -p $(PORT) $(HONCHO_ARGS)

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

## bench: API throughput and latency (gunicorn, PostgreSQL and SQLite), the audit log and its append designs,
## page server times and outbound deliveries (one Celery worker, Redis; see bench/README.md); BENCH_ARGS go to
## bench/registry.py
bench: venv
	$(PY) bench/registry.py $(BENCH_ARGS)
	$(PY) bench/audit.py
	$(PY) bench/append_designs.py
	$(PY) bench/pages.py
	$(PY) bench/deliveries.py

clean:
	rm -rf $(VENV) var
