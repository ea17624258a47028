# Two entry points for a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export FLASK_APP := wsgi.py

.PHONY: run test install translations messages serve migrate seed clean

$(BIN)/activate: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(BIN)/activate

install: $(BIN)/activate translations

## Compile app/translations/*/LC_MESSAGES/messages.po into the .mo files the app loads (git ignores them)
translations: $(BIN)/activate
	$(BIN)/pybabel compile -d app/translations --statistics

## After adding strings: extract them into messages.pot and merge it into the French and Arabic catalogues
messages: $(BIN)/activate
	$(BIN)/pybabel extract -F babel.cfg -k _l -k lazy_gettext -o app/translations/messages.pot --no-location --sort-output .
	$(BIN)/pybabel update -i app/translations/messages.pot -d app/translations --no-fuzzy-matching --ignore-obsolete

## The embedded default: SQLite in instance/, jobs in-process, demo data, http://127.0.0.1:5000
run: install
	$(BIN)/flask db upgrade
	$(BIN)/flask seed demo
	$(BIN)/flask run --host 127.0.0.1 --port 5000

## The whole test suite (DATABASE_URL / REDIS_URL select PostgreSQL and Redis; SQLite otherwise)
test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

migrate: install
	$(BIN)/flask db upgrade

clean:
	rm -rf $(VENV) instance .pytest_cache
