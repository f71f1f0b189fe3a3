# Margin engine: developer tasks.
#
#   make setup     create .venv and install the project (only when needed)
#   make node      npm ci: anvil, pinned in package-lock.json (only when needed)
#   make compile   ape compile
#   make sizes     runtime bytecode sizes vs the EIP-170 limit
#   make lint      the Vyper lint (token calls asserted, no calls inside expressions, ...)
#   make test      node, sizes, lint, then the test suite (TEST_CMD)
#   make demo | bench | deploy     ape run demo | bench | deploy
#                  (bench: gas, then the bot's scan on anvil; BENCH_ARGS="--no-scan" or "--scan-only")
#   make clean     remove build and test caches (make distclean: also .venv, node_modules)
#
# anvil (a local JSON-RPC node) comes from the npm package
# @foundry-rs/anvil-linux-amd64; its bin/ is on the PATH of every target, so
# `--network ethereum:local:foundry` and margin_engine.anvil find it.

PYTHON  ?= python3
VENV    ?= .venv
PY      := $(VENV)/bin/python
PIP     := $(PY) -m pip
APE     := $(VENV)/bin/ape
STAMP   := $(VENV)/.installed
NPM     ?= npm
ANVIL_DIR  := node_modules/@foundry-rs/anvil-linux-amd64/bin
NODE_STAMP := node_modules/.installed

# ape-vyper runs the `vyper` executable found on PATH when it matches the
# configured version (else it looks for a vvm-downloaded binary): put the
# virtualenv's vyper first so that compilation is offline.
export PATH := $(abspath $(VENV))/bin:$(abspath $(ANVIL_DIR)):$(PATH)

# Silence a harmless pydantic-settings warning that ape-vyper 0.8.12 triggers
# on every ape command (its config has an unresolved forward reference).
export PYTHONWARNINGS ?= ignore:Field 'import_remapping' has an incomplete definition

# Test command (override: make test TEST_CMD="...", or add TEST_ARGS="-m 'not fuzz'").
TEST_ARGS ?=
TEST_CMD  ?= $(APE) test tests -q $(TEST_ARGS)
DEPLOY_ARGS ?=
BENCH_ARGS ?=

.PHONY: venv setup node compile sizes lint test demo bench deploy clean distclean

venv setup: $(STAMP)
node: $(NODE_STAMP)

# Reinstall only when the stamp is missing or pyproject.toml changed.
# --no-build-isolation: the build uses the venv's setuptools and wheel (a
# fresh venv has no wheel: install both first), so an already provisioned
# venv reinstalls offline.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import setuptools, wheel, sys; sys.exit(int(setuptools.__version__.split('.')[0]) < 64)" \
		|| $(PIP) install -q "setuptools>=64" wheel
	$(PIP) install -q --no-build-isolation -e .
	touch $(STAMP)

# npm ci (exact versions from package-lock.json) only when the stamp is
# missing or the lockfile changed; fails if the binary did not land.
$(NODE_STAMP): package-lock.json package.json
	$(NPM) ci --no-audit --no-fund
	test -x $(ANVIL_DIR)/anvil
	touch $(NODE_STAMP)

compile: setup
	$(APE) compile

sizes: setup
	$(PY) -m margin_engine.sizes

# Vyper rules no off-the-shelf analyser checks on 0.4.3 (margin_engine/lint.py).
lint: setup
	$(PY) -m margin_engine.lint contracts

# Sizes first; the tests run even when a contract is over the limit, and the
# target fails if either step failed. REQUIRE_ANVIL: the tests that need
# anvil (tests/node) fail instead of skipping when it is missing.
test: export REQUIRE_ANVIL ?= 1
test: setup node
	@status=0; \
	$(MAKE) --no-print-directory sizes || status=1; \
	$(MAKE) --no-print-directory lint || status=1; \
	$(TEST_CMD) || status=1; \
	exit $$status

demo: setup
	$(APE) run demo

bench: setup node
	$(APE) run bench $(BENCH_ARGS)

deploy: setup
	$(APE) run deploy $(DEPLOY_ARGS)

clean:
	rm -rf .build .pytest_cache .hypothesis build *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) node_modules
