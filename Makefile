# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: install system-tools demo test lint serve db-stop bench clean

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

serve: install
	$(PY) manage.py runserver 127.0.0.1:8000

db-stop:
	$(PY) -m config.embedded_postgres stop

clean: db-stop
	rm -rf .data $(VENV)
