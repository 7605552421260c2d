# Newton Lens — set-up, demo and tests. `make demo` and `make test` are the two commands.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := .make
TOOLS := devnet/tools
TASKS ?= 3000
# the demo leaves some wrong responses unchallenged, so the Disputes page has open and missed candidates
CHALLENGE_RATE ?= 0.75

.PHONY: setup system-deps demo test lint format contracts check-prereqs clean-db down

setup: check-prereqs $(STAMP)/python $(STAMP)/tools system-deps
	@echo "setup: ok (.venv, $(TOOLS)/node_modules, chromium and promtool are current)"

# Debian's chromium (real-browser test) and promtool (alert rules check): installed when missing.
system-deps:
	@bash tests/system_deps.sh

check-prereqs:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found. Install Python >= 3.11 (or run: make PYTHON=/path/to/python3.11 ...)"; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || { echo "error: Python >= 3.11 is required, $(PYTHON) is $$($(PYTHON) -V 2>&1). Install a newer Python or run: make PYTHON=python3.12 ..."; exit 1; }
	@$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || { echo "error: $(PYTHON) has no venv/ensurepip module. On Debian/Ubuntu: apt-get install python3-venv"; exit 1; }
	@command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || { echo "error: node and npm are required to install anvil and solc from the npm registry. Install Node.js >= 18 (e.g. apt-get install nodejs npm)"; exit 1; }

$(STAMP)/python: pyproject.toml
	@mkdir -p $(STAMP)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "setup: installing Python dependencies into $(VENV) (pinned in pyproject.toml)…"
	@$(PY) -m pip install -q --upgrade pip >/dev/null 2>&1 || true
	@$(PY) -m pip install -q -e '.[test]' || { echo "error: pip could not install the Python dependencies. Check your network access to the Python package index (PyPI), then re-run: make setup"; exit 1; }
	@touch $@

$(STAMP)/tools: $(TOOLS)/package.json $(TOOLS)/package-lock.json
	@mkdir -p $(STAMP)
	@echo "setup: installing anvil and solc from the npm registry into $(TOOLS)/node_modules…"
	@cd $(TOOLS) && npm ci --no-audit --no-fund --loglevel=error >/dev/null || { echo "error: npm could not install @foundry-rs/anvil and solc. Check your network access to the npm registry, then re-run: make setup"; exit 1; }
	@$(TOOLS)/node_modules/.bin/anvil --version >/dev/null || { echo "error: the anvil binary from @foundry-rs/anvil does not run on this machine ($$(uname -sm))."; exit 1; }
	@touch $@

contracts: setup
	$(VENV)/bin/lens contracts build

demo: setup
	$(VENV)/bin/lens demo --tasks $(TASKS) --challenge-rate $(CHALLENGE_RATE)

# Layers and lint first (fast), then the suite.
lint: setup
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test: lint
	$(PY) -m pytest -q -n 2 --dist loadgroup

down:
	-$(VENV)/bin/lens devnet down

clean-db:
	rm -f data/lens.duckdb data/lens.duckdb.wal
