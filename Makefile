# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := $(or $(VENV_DIR),.venv)
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The compiled catalogues callers hear, built from their .po (never committed: a stale one would lie).
CATALOGUES := $(patsubst %.po,%.mo,$(wildcard locale/*/LC_MESSAGES/django.po))

.PHONY: install run test lint call bench clean messages

# (Re)install when the pinned requirements change.
$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP) $(CATALOGUES)

%.mo: %.po $(STAMP)
	DEBUG=true $(BIN)/python manage.py catalogue --compile

# After changing what callers hear: add the new strings to each .po, then translate them.
messages: $(STAMP)
	DEBUG=true $(BIN)/python manage.py catalogue --update --compile

run: $(STAMP) $(CATALOGUES)
	DEBUG=true $(BIN)/python manage.py migrate --noinput
	DEBUG=true $(BIN)/python manage.py runserver 127.0.0.1:3001

test: $(STAMP) $(CATALOGUES)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Lint, format and the layers' import contracts (pyproject.toml): `make lint`; `$(BIN)/ruff format .` fixes the format.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

call: $(STAMP) $(CATALOGUES)
	DEBUG=true $(BIN)/python manage.py migrate --noinput
	DEBUG=true $(BIN)/python manage.py call $(CALL_ARGS)

bench: $(STAMP) $(CATALOGUES)
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache staticfiles $(CATALOGUES)
