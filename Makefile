# Two commands matter (see README): `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
PIP_FLAGS ?= --disable-pip-version-check --quiet
# The suite in two worker processes (this machine kind has two cores), a test file staying in one
# worker so that its module fixtures (servers, Zebra, two-node templates) start once.
# `make test PYTEST_WORKERS=0` runs it in one process.
PYTEST_WORKERS ?= 2
PYTEST_ARGS ?= -n $(PYTEST_WORKERS) --dist loadfile

.PHONY: run test install install-test compile-translations translations bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall only when the dependencies change.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) install $(PIP_FLAGS) -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(PIP) install $(PIP_FLAGS) -e ".[test,bench]"
	touch $@ $(VENV)/.installed

# Translations are compiled at install time (the app can also read the .po directly).
compile-translations:
	$(BIN)/pybabel compile --statistics -d library/locale -D messages

install: $(VENV)/.installed compile-translations

install-test: $(VENV)/.installed-test compile-translations
	@bash scripts/ensure_chromium.sh
	@bash scripts/ensure_yaz.sh

## make run: install, create or upgrade the SQLite database, load demo data, serve on :8000
run: install
	$(BIN)/library migrate
	$(BIN)/library demo
	$(BIN)/library serve

## make test: install what the tests need and run the whole suite
## (PostgreSQL: LIBRARY_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test make test)
test: install-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## make translations: extract messages, update the catalogs, list what is untranslated
translations: $(VENV)/.installed-test
	$(BIN)/python scripts/translations.py

bench: $(VENV)/.installed-test compile-translations
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) data build *.egg-info
