# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := $(or $(VENV_DIR),.venv)
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The compiled catalogues callers hear, built from their .po (never committed: a stale one would lie).
CATALOGUES := $(patsubst %.po,%.mo,$(wildcard locale/*/LC_MESSAGES/django.po))

# `make run PORT=3005` serves on another port (the development BASE_URL follows it), and
# `make call PORT=3005` calls that server; `make call` alone places the call in process.
CALL_SERVER := $(if $(filter-out undefined,$(origin PORT)),--url http://127.0.0.1:$(PORT))
PORT ?= 3001

# `make serve`: the app as production runs it, on this machine. Its secrets are made once and kept in
# LOCAL_SECRETS (untracked): a new PIN_PEPPER at every start would stop every PIN and code from matching.
LOCAL_SECRETS ?= .local-secrets
# Production settings, with those secrets (a variable set in the environment wins, e.g. a real
# TWILIO_AUTH_TOKEN), its own SQLite file unless DATABASE_URL says otherwise, and an https BASE_URL:
# Fly's proxy ends TLS and tells the app so with X-Forwarded-Proto, as `manage.py call` does here.
SERVED = set -a && . $(abspath $(LOCAL_SECRETS)) && set +a && export DEBUG=false PORT=$(PORT) \
	GLIBC_TUNABLES="$${GLIBC_TUNABLES:-glibc.malloc.hugetlb=1}" \
	BASE_URL="$${BASE_URL:-https://127.0.0.1:$(PORT)}" \
	DATABASE_URL="$${DATABASE_URL:-sqlite:///$(CURDIR)/served.sqlite3}" &&

.PHONY: install run test lint call bench clean messages serve call-served manage-served

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
	DEBUG=true PORT=$(PORT) $(BIN)/python manage.py migrate --noinput
	DEBUG=true PORT=$(PORT) $(BIN)/python manage.py runserver 127.0.0.1:$(PORT)

test: $(STAMP) $(CATALOGUES)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Lint, format and the layers' import contracts (pyproject.toml): `make lint`; `$(BIN)/ruff format .` fixes the format.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

# Quietly: the call's own lines are what the caller hears.
call: $(STAMP) $(CATALOGUES)
	DEBUG=true PORT=$(PORT) $(BIN)/python manage.py migrate --noinput -v0
	DEBUG=true PORT=$(PORT) $(BIN)/python manage.py call $(CALL_SERVER) $(CALL_ARGS)

# SECRET_KEY="${SECRET_KEY:-...}": a variable set in the environment wins over the one kept here.
$(LOCAL_SECRETS):
	umask 077 && { \
	  echo "# make serve's secrets, made once and never committed. Keep them: PIN_PEPPER checks every PIN in its database."; \
	  for name in SECRET_KEY PIN_PEPPER TWILIO_AUTH_TOKEN; do \
	    echo "$$name=\"\$${$$name:-$$($(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(40))')}\""; \
	  done; } > $@.new && mv $@.new $@

# gunicorn with gunicorn.conf.py, bound to 127.0.0.1 only; Ctrl-C stops it.
serve: $(STAMP) $(CATALOGUES) $(LOCAL_SECRETS)
	$(SERVED) $(BIN)/python manage.py migrate --noinput
	$(SERVED) $(BIN)/python manage.py collectstatic --noinput
	$(SERVED) exec $(BIN)/python -m gunicorn --config gunicorn.conf.py --bind 127.0.0.1:$(PORT) myibot.wsgi

# A call to `make serve`, as Twilio's would reach it through Fly's proxy.
call-served: $(STAMP) $(LOCAL_SECRETS)
	$(SERVED) $(BIN)/python manage.py call --url http://127.0.0.1:$(PORT) --base-url "$$BASE_URL" $(CALL_ARGS)

# Any manage.py command on `make serve`'s database with its secrets: make manage-served ARGS='deposit 123456 50'
manage-served: $(STAMP) $(LOCAL_SECRETS)
	$(SERVED) $(BIN)/python manage.py $(ARGS)

bench: $(STAMP) $(CATALOGUES)
	$(BIN)/python -m bench $(BENCH_ARGS)

# Leaves LOCAL_SECRETS and the databases: they go together, and one without the other locks everyone out.
clean:
	rm -rf $(VENV) .pytest_cache staticfiles $(CATALOGUES)
