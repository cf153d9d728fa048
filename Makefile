# Dev commands for gradviz. `make demo` draws samples/linear.py; `make test` runs the tests.
# Both build .venv once (a stamp file remembers) and are quick to run again.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Pinned so pip takes the CPU wheel: a bare `torch` would pull a multi-GB CUDA build.
TORCH  ?= torch==2.13.0
PIP    := $(BIN)/python -m pip --disable-pip-version-check

.DEFAULT_GOAL := help
.PHONY: help venv graphviz chromium native demo test lint clean

help:
	@echo "make demo   render samples/linear.py to linear.svg"
	@echo "make test   run the test suite"
	@echo "make lint   ruff check, ruff format --check, mypy"
	@echo "make native build gradviz's optional C++ hooks (g++; demo and test do it)"
	@echo "make clean  remove .venv, caches and demo outputs"

venv: $(STAMP)

# Reinstalled when pyproject.toml changes, or when the package's __init__.py first appears
# (setuptools' editable install maps only the packages it found at install time).
$(STAMP): pyproject.toml $(wildcard graphviz_grad/__init__.py)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet "$(TORCH)" numpy
	$(PIP) install --quiet -e '.[test]'
	touch $@

# Graphviz's `dot` draws SVG/PNG/PDF; DOT, JSON and the tree work without it.
graphviz:
	@if command -v dot >/dev/null 2>&1; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then SUDO=; \
	elif command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; \
	else echo "warning: graphviz's 'dot' is missing and cannot be installed (not root, no sudo);" \
	     "SVG/PNG/PDF output will fail, DOT/JSON/tree still work." >&2; exit 0; fi; \
	echo "Installing graphviz (the 'dot' program)..."; \
	if ! { $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	       $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz >/dev/null; }; then \
	  echo "warning: could not install graphviz; SVG/PNG/PDF output will fail," \
	       "DOT/JSON/tree still work." >&2; \
	fi

# Debian's chromium runs the HTML page's tests headless (tests/html/test_html_browser.py); they
# skip without it. About 35 s to install on a fresh Debian machine.
chromium:
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then SUDO=; \
	elif command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; \
	else echo "warning: chromium is missing and cannot be installed (not root, no sudo);" \
	     "the browser tests of the HTML page will be skipped." >&2; exit 0; fi; \
	echo "Installing chromium (headless browser for the HTML tests)..."; \
	if ! { $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	       $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }; then \
	  echo "warning: could not install chromium; the browser tests of the HTML page will be skipped." >&2; \
	fi

# gradviz's optional C++ pre-hooks (graphviz_grad/capture/native.py): a faster capture of big
# graphs and long loops. Built once (about 20 s) into ~/.cache/gradviz; without g++ (or Python's
# headers) gradviz runs in pure Python, shows the same, and this only warns.
native: $(STAMP)
	@$(BIN)/python -m graphviz_grad.native --check >/dev/null 2>&1 && exit 0; \
	if ! command -v g++ >/dev/null 2>&1; then \
	  echo "warning: g++ is missing: gradviz runs without its C++ hooks (slower on big graphs)." >&2; \
	  exit 0; fi; \
	echo "Building gradviz's C++ hooks (about 20 s, once)..."; \
	$(PIP) install --quiet ninja || true; \
	$(BIN)/python -m graphviz_grad.native || true

demo: $(STAMP) graphviz native
	$(BIN)/gradviz render samples/linear.py -o linear.svg
	@echo "The graph is in $(CURDIR)/linear.svg (open it in a browser)."

test: $(STAMP) graphviz chromium native
	$(BIN)/python -m pytest

# Runs all three checks, then fails if any of them did.
lint: $(STAMP)
	@rc=0; \
	echo "ruff check ."; $(BIN)/ruff check . || rc=1; \
	echo "ruff format --check ."; $(BIN)/ruff format --check . || rc=1; \
	echo "mypy graphviz_grad"; $(BIN)/mypy graphviz_grad || rc=1; \
	exit $$rc

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache .hypothesis
	rm -f linear.svg
