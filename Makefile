# Developer and CI entry points. Everything runs from the virtualenv in $(VENV).
PYTHON ?= python3
VENV ?= .venv
PYTEST_ARGS ?=
# pytest-xdist processes for `make test` (0: one process). More than the two cores a machine here has: much of the
# suite waits on servers, sockets and deadlines.
TEST_WORKERS ?= 4
ROLES ?=
TTL ?= 3600
CHAOS_SECONDS ?= 120

STAMP := $(VENV)/.installed
REQUIREMENTS := requirements.txt requirements-dev.txt

.PHONY: help venv install run test bench microbench chaos token encrypt-existing rotate-key clean clean-instance

help:
	@echo "make install           create $(VENV) and install requirements-dev.txt"
	@echo "make run               serve on http://127.0.0.1:8000 with an embedded database, until Ctrl-C;"
	@echo "                       settings, as make run NAME=value (or exported), with their defaults:"
	@echo "    PORT=8000               the port the API listens on"
	@echo "    HOST=127.0.0.1          the address it listens on (0.0.0.0: every interface)"
	@echo "    WEB_CONCURRENCY=2       gunicorn worker processes (gevent, 1000 connections each)"
	@echo "    EMBEDDED_DB_PORT=27117  the embedded database's port, on 127.0.0.1 (data in instance/db)"
	@echo "    MONGODB_URI=            an existing MongoDB (a replica set) to use instead of the embedded one"
	@echo "    MONGODB_DB=clinic       the database name"
	@echo "    JWT_SECRET=             the token secret (unset: instance/jwt_secret, made on the first run)"
	@echo "    FIELD_ENCRYPTION_KEY=   the master key (unset: instance/field_encryption_key, made on the first run)"
	@echo "    CLINIC_INSTANCE_DIR=instance  where the secret, the master key and the database live (tests)"
	@echo "    and every setting of docs/operations.md's Configuration (LOG_LEVEL, CORS_ORIGINS, ...)"
	@echo "make test              lint (ruff), import rule (lint-imports), types (mypy), then the tests in 4 processes"
	@echo "                       (TEST_WORKERS=4, PYTEST_ARGS=...)"
	@echo "make bench             measure the service against a plain add_and_link, then mixed traffic (bench/README.md)"
	@echo "make microbench        time the service's own steps of add_and_link (pytest-benchmark, bench/micro)"
	@echo "make chaos             mixed traffic while workers and the database are killed and failpoints armed,"
	@echo "                       then every answer checked on the database (CHAOS_SECONDS=120)"
	@echo "make -s token UID=...  print a dev JWT (optional ROLES=admin TTL=3600)"
	@echo "make encrypt-existing  encrypt patient values stored before field encryption (make run must be running)"
	@echo "make rotate-key        rewrap the data key under a new instance/field_encryption_key (make run running)"
	@echo "make clean             remove $(VENV) and caches, keep instance/"
	@echo "make clean-instance    remove instance/ (dev database, secret and master key)"

venv install: $(STAMP)

# Install output goes to stderr so that $(make -s token ...) captures only the token.
$(VENV)/bin/python:
	@echo "Creating $(VENV)" >&2
	@$(PYTHON) -m venv $(VENV) >&2

$(STAMP): $(REQUIREMENTS) | $(VENV)/bin/python
	@echo "Installing requirements-dev.txt into $(VENV)" >&2
	@$(VENV)/bin/python -m pip install --disable-pip-version-check -r requirements-dev.txt >&2
	@touch $@

# The command alone, no shell around it: make starts run_dev.py itself, which then stops with make, even on kill -9.
run: $(STAMP)
	$(VENV)/bin/python scripts/run_dev.py

# Lint, the layers' import rule and the app's types first (ruff.toml, .importlinter, mypy.ini): no minute of tests
# is spent on code that fails them. Each worker takes whole files (a module's gunicorn starts once) and starts
# its own database servers; tests/conftest.py puts the longest files first.
test: $(STAMP)
	$(VENV)/bin/ruff check --quiet .
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/mypy --no-error-summary
	$(VENV)/bin/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

# Neither is part of `make test`. bench takes about 3 minutes, wants a quiet machine and writes bench/RESULTS.md.
bench: $(STAMP)
	$(VENV)/bin/python bench/run.py

microbench: $(STAMP)
	$(VENV)/bin/python -m pytest bench/micro --benchmark-timer=time.process_time \
		--benchmark-columns=median,iqr,min,rounds --benchmark-sort=name $(PYTEST_ARGS)

# Not part of `make test` either, which runs it for 20 seconds (tests/scripts/test_chaos.py).
chaos: export CHAOS_SECONDS := $(CHAOS_SECONDS)
chaos: $(STAMP)
	$(VENV)/bin/python scripts/chaos.py

# UID counts only from the command line: some shells export their numeric UID.
TOKEN_UID := $(if $(filter command line override,$(origin UID)),$(UID))
ifneq ($(filter token,$(MAKECMDGOALS)),)
ifeq ($(strip $(TOKEN_UID)),)
$(error UID is required: make -s token UID=doctor_uid_123 [ROLES=admin] [TTL=3600])
endif
endif

# Passed through the environment so that no value is parsed by the shell.
token: export TOKEN_UID := $(TOKEN_UID)
token: export TOKEN_ROLES := $(ROLES)
token: export TOKEN_TTL := $(TTL)
token: $(STAMP)
	@$(VENV)/bin/python scripts/mint_token.py --uid "$$TOKEN_UID" --roles "$$TOKEN_ROLES" --ttl "$$TOKEN_TTL"

# Operator commands (flask --app wsgi ...) on the database `make run` serves.
encrypt-existing: $(STAMP)
	$(VENV)/bin/python scripts/dev_command.py encrypt-existing

rotate-key: $(STAMP)
	$(VENV)/bin/python scripts/dev_command.py rotate-master-key

# instance/ holds the dev database and secret, so only clean-instance removes it.
clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .hypothesis htmlcov .coverage
	find . \( -path ./.git -o -path ./instance \) -prune -o \( -name __pycache__ -o -name "*.egg-info" \) -type d -prune -exec rm -rf {} +

clean-instance:
	rm -rf instance
