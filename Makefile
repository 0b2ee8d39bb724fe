# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := $(or $(VENV_DIR),.venv)
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test call bench clean

# (Re)install when the pinned requirements change.
$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	DEBUG=true $(BIN)/python manage.py migrate --noinput
	DEBUG=true $(BIN)/python manage.py runserver 127.0.0.1:3001

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

call: $(STAMP)
	DEBUG=true $(BIN)/python manage.py migrate --noinput
	DEBUG=true $(BIN)/python manage.py call $(CALL_ARGS)

bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache staticfiles
