# Set-up commands of the outside contract (../shared/CONTRACT.md): install, serve, test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
TEST_STAMP := $(VENV)/.test-installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
DOCS_STAMP := $(VENV)/.docs-installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
HOST ?= 127.0.0.1
PORT ?= 8000
DATA_DIR ?= ./chatwell-data
PYTEST_ARGS ?=

.PHONY: install install-test install-llm install-docs system-deps serve test lint docs widget clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e .
	rm -f $(VENV)/.installed-*
	touch $@

install-test: $(TEST_STAMP)

$(TEST_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,postgres,redis,simd,anthropic,queue,fastembed,otel]'
	rm -f $(VENV)/.test-installed-*
	touch $@

install-docs: $(DOCS_STAMP)

$(DOCS_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[docs]'
	rm -f $(VENV)/.docs-installed-*
	touch $@

# The docs site (mkdocs.yml, docs/) into site/: offline, warnings as errors. tests/test_docs.py
# runs the same build, so CI's `make test` fails on a broken page too.
docs: install-docs
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# The real LLM server of the integration tests (llama-cpp-python builds from source once, then
# its wheel is reused from ~/.cache/chatwell-wheels); a no-op when already installed.
install-llm: install-test
	bash .ci/llama-wheel.sh

# The Debian packages the suite needs (redis-server, chromium, nginx-light, ...), named in the
# script; it installs only what is missing (apt as root or with `sudo -n`), else says what to run.
system-deps:
	bash scripts/system-deps.sh

serve: install
	$(BIN)/chatwell serve --host $(HOST) --port $(PORT) --data-dir $(DATA_DIR) --demo

# Bytecode, and pytest's test modules with their asserts rewritten, are kept in __pycache__
# (ignored by git) even where PYTHONDONTWRITEBYTECODE is set: else every xdist worker compiles
# them again on each run, ~13 s of CPU per worker.
KEEP_BYTECODE := PYTHONDONTWRITEBYTECODE=

test: system-deps install-test install-llm lint
	$(KEEP_BYTECODE) $(BIN)/python -m pytest -n auto $(PYTEST_ARGS)

# The edit loop: lint, then the unit tests and the SQLite ones that start no server of their own
# (no PostgreSQL, Chromium, LLM server or live uvicorn; markers in pyproject.toml). `make test`
# runs everything.
FAST_MARKERS := not postgres and not browser and not llm and not live and not slow

test-fast: install-test lint
	$(KEEP_BYTECODE) $(BIN)/python -m pytest -n auto -m "$(FAST_MARKERS)" $(PYTEST_ARGS)

# Style and layers: ruff's lint rules and formatting, and the import-linter contracts.
lint: install-test
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/lint-imports

# The website widget: widget/src's ES modules bundled by esbuild (pinned in widget/package-lock.json,
# installed into ~/.cache on first use) into src/chatwell/web/widget/widget.js, which stays committed
# (pip install needs no Node); tests/widget/test_widget_bundle.py fails when it is not the build.
widget:
	$(PYTHON) scripts/build_widget.py

clean:
	rm -rf $(VENV) .pytest_cache site
