# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: install system-tools demo test lint serve worker db-stop bench clean

install: $(INSTALLED)

$(INSTALLED): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

demo: install
	$(PY) manage.py demo

system-tools:
	scripts/ensure-system-tools

test: install system-tools
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The web server and one Celery worker (jobs: restores, async backups).
serve: install system-tools
	scripts/serve

# One more worker (any machine with the same CELERY_BROKER_URL and DATABASE_URL).
worker: install system-tools
	[ -n "$$CELERY_BROKER_URL" ] || $(PY) -m config.embedded_redis start
	$(PY) -m celery -A config.celery worker --loglevel INFO --concurrency $${CELERY_WORKER_CONCURRENCY:-2}

db-stop:
	$(PY) -m config.embedded_postgres stop
	$(PY) -m config.embedded_redis stop

clean: db-stop
	rm -rf .data $(VENV)
