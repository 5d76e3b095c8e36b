# twinfleet: every target sets up its own virtual environment first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Microsoft's Node.js SDKs for tests/node, pinned by its package-lock.json: installed with
# `npm ci` only when node_modules is missing or the lock file changed.
NODE_TESTS := tests/node
NODE_STAMP := $(NODE_TESTS)/node_modules/.installed
CHROMIUM := /usr/lib/chromium/chromium

.PHONY: test lint docs bench soak demo format clean chromium

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# The documentation site: concepts, the CLI reference (generated from the commands themselves) and
# the API reference (from docstrings); any warning fails the build.
docs: $(STAMP)
	$(BIN)/typer twinfleet.cli.main utils docs --name twinfleet --output docs/reference/cli.md
	$(BIN)/mkdocs build --strict --quiet --site-dir build/site

$(NODE_STAMP): $(NODE_TESTS)/package.json $(NODE_TESTS)/package-lock.json
	cd $(NODE_TESTS) && npm ci --no-audit --no-fund
	touch $(NODE_STAMP)

# The dashboard's browser tests drive Debian's chromium (Playwright cannot download its own here).
chromium:
	test -x $(CHROMIUM) || { apt-get update && \
		apt-get install -y --no-install-recommends chromium fonts-liberation; }

test: lint docs $(NODE_STAMP) chromium
	$(BIN)/pytest -n auto --dist loadgroup

bench: $(STAMP)
	test -x /usr/sbin/mosquitto || command -v mosquitto >/dev/null || (apt-get update -qq && apt-get install -y -qq mosquitto)
	$(BIN)/python -m benchmarks

demo: $(STAMP)
	$(BIN)/twinfleet demo

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis build/site docs/reference/cli.md
	rm -rf $(NODE_TESTS)/node_modules

# The chaos soak (about 10 minutes; not part of `make test`): a hub, 100 agents and a campaign
# controller under SIGKILLs and cut or slowed connections, with invariants checked throughout.
# A short run: make soak SOAK_ARGS="--minutes 2 --devices 20".
SOAK_ARGS ?=
soak: $(STAMP)
	$(BIN)/python -m benchmarks.soak $(SOAK_ARGS)
