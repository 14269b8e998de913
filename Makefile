# Two commands matter: `make run` and `make test`. Both start from a bare
# machine: every step below is idempotent.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NATIVE := $(VENV)/.native
# tools/native.py compiles some of these; a change to any of them may change what it types.
WORKER_SOURCES := $(wildcard worker/*.py worker/*/*.py worker/*/*.c)

.PHONY: setup native run test lint typecheck pytest clean bench-tools

setup: $(STAMP) $(NATIVE)

# python-prctl compiles against libcap, and tools/native.py's C needs a compiler; install
# them when we are root and they are missing.
SYSTEM_PACKAGES := libcap-dev build-essential
.deps-system:
	@for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "missing:$$missing: run 'sudo apt-get install$$missing'"; exit 1; fi; \
	fi
	@# Only the browser test (tests/system/test_demo_browser.py) needs chromium: it skips
	@# without, so failing to install it does not fail the set-up.
	@if ! dpkg -s chromium >/dev/null 2>&1; then \
	  if [ "$$(id -u)" != 0 ]; then \
	    echo "chromium is missing and we are not root: the browser test will be skipped"; \
	  elif ! (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium); then \
	    echo "chromium could not be installed with apt-get: the browser test will be skipped"; \
	  fi; \
	fi
	@touch $@

$(STAMP): pyproject.toml .deps-system
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	@touch $@

# The worker's per-request modules as C extensions beside their sources (tools/native.py).
native: $(NATIVE)

$(NATIVE): $(STAMP) tools/native.py $(WORKER_SOURCES)
	$(BIN)/python tools/native.py build
	@touch $@

run: setup
	$(BIN)/pyws -d info

lint: setup
	$(BIN)/ruff format --check supervisor worker tests bench tools
	$(BIN)/ruff check supervisor worker tests bench tools

typecheck: setup
	@mkdir -p .mypy-path/pyws
	@ln -sfn ../../supervisor .mypy-path/pyws/supervisor
	@ln -sfn ../../worker .mypy-path/pyws/worker
	$(BIN)/mypy .mypy-path/pyws/supervisor .mypy-path/pyws/worker tests bench tools

pytest: setup
	$(BIN)/pytest

test: lint typecheck pytest

# Peers for bench/: nginx, lighttpd (mod_cgi), wrk and ab (apache2-utils); uvicorn, and
# aiohttp for bench/ws.py.
bench-tools: setup
	@for p in nginx lighttpd wrk apache2-utils; do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi
	$(BIN)/pip install -q 'uvicorn[standard]' aiohttp

clean:
	test ! -x $(BIN)/python || $(BIN)/python tools/native.py clean
	rm -rf $(VENV) .deps-system .mypy_cache .ruff_cache .pytest_cache build
