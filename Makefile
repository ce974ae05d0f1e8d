# migr: `make help` lists the targets. Everything runs inside .venv, created on first use
# from the exact pins in requirements/constraints.txt.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# pytest-xdist workers; tests/conftest.py gives each its share of the cores (2 cores: 1.7x faster than 1 worker)
# and orders the test modules longest first (times of earlier runs); a worker takes a whole module at a time
PYTEST_WORKERS ?= 2
XDIST = $(if $(filter 0 1,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist loadscope --no-loadscope-reorder)

.DEFAULT_GOAL := help
.PHONY: help venv browser allocator demo test test-fast lint format bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements/constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=24"
	$(PY) -m pip install -q -c requirements/constraints.txt -e '.[dev,app]'
	command -v chromium >/dev/null || command -v chromium-browser >/dev/null || $(MAKE) --no-print-directory browser
	$(PY) -c "import ctypes.util, sys; sys.exit(not ctypes.util.find_library('tcmalloc_minimal'))" \
		|| $(MAKE) --no-print-directory allocator
	touch $(STAMP)

venv: $(STAMP)  ## create .venv and install the pinned stack (about 2 minutes, no GPU needed)

browser:  ## install Debian's chromium for the app's browser test (as root with apt; see README otherwise)
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
		echo "browser: install Chromium yourself (apt-get install chromium) or set MIGR_CHROMIUM=/path/to/chrome;" \
		     "without one the app's browser test is skipped"; \
	fi

allocator:  ## install tcmalloc, which the study's and demo's workers preload (as root with apt; optional)
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libtcmalloc-minimal4 >/dev/null; \
	else \
		echo "allocator: install tcmalloc yourself (apt-get install libtcmalloc-minimal4) for faster workers;" \
		     "without it they use the system allocator (the same results)"; \
	fi

demo: $(STAMP)  ## run the whole pipeline on the embedded default (tiny model, synthetic corpus)
	$(PY) -m src.pipeline $(ARGS)

test: $(STAMP)  ## run the whole test suite (slow tests included), as CI does
	$(PY) -m pytest $(XDIST) $(PYTEST_ARGS)

test-fast: $(STAMP)  ## the unit tests only (skips tests marked slow)
	$(PY) -m pytest -m "not slow" $(XDIST) $(PYTEST_ARGS)

lint: $(STAMP)  ## ruff lint + format check
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(STAMP)  ## apply ruff fixes and formatting
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

bench: $(STAMP)  ## run every benchmark under benchmarks/ (prints ratios from one run each)
	for f in benchmarks/*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

clean:  ## remove run outputs (keeps .venv)
	rm -rf runs wandb lightning_logs .pytest_cache
