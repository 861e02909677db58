# keepwarm: the two commands that set up everything on a fresh machine.
#   make demo   create .venv, install, import the bundled demo year and write the digest
#   make test   install the test extras and system packages, then lint, type-check and test
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_DIR := $(CURDIR)/.demo
STAMP := $(VENV)/.installed
# Strict editable installs (needed by mypy) see new modules only after a reinstall: directory
# mtimes change when files are added or removed, so depending on them reinstalls exactly then.
PKG_DIRS := $(shell find core daemon connectors digests -type d -not -name __pycache__)
TEST_STAMP := $(VENV)/.installed-test
SYS_STAMP := $(VENV)/.system-packages
# Debian packages the tests need: a real IMAP server, systemd-analyze, headless Chromium (digest
# render check), groff (the man page renders without warnings).
SYSTEM_PACKAGES := dovecot-imapd systemd chromium groff-base
# Debian packages the benchmarks compare keepwarm with (bench/ingest.py); `make bench` only.
BENCH_PACKAGES := notmuch maildir-utils
BENCH_STAMP := $(VENV)/.bench-packages
# keepwarm's dependencies as wheels: tests/test_install.py installs a freshly built keepwarm wheel
# into a new venv from here, offline (as a user would with pip, minus the network).
WHEELHOUSE := $(VENV)/wheelhouse
WHEEL_STAMP := $(WHEELHOUSE)/.complete

.PHONY: demo test lint typecheck pytest system-deps bench faults clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml $(PKG_DIRS) | $(BIN)/python
	$(BIN)/python -m pip install -q -e . --config-settings editable_mode=strict
	touch $@

$(TEST_STAMP): pyproject.toml $(PKG_DIRS) | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]' --config-settings editable_mode=strict
	touch $@ $(STAMP)

# $(call apt_install,PACKAGES,FOR): installs those of the Debian PACKAGES that are missing (CI runs
# as root; else through sudo).
define apt_install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages$(2):$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
endef

# What the test-suite needs from Debian.
$(SYS_STAMP): | $(BIN)/python
	$(call apt_install,$(SYSTEM_PACKAGES),)
	touch $@

$(BENCH_STAMP): | $(BIN)/python
	$(call apt_install,$(BENCH_PACKAGES), for the benchmarks)
	touch $@

$(WHEEL_STAMP): pyproject.toml | $(BIN)/python
	rm -rf $(WHEELHOUSE)
	$(BIN)/python -m pip wheel -q -w $(WHEELHOUSE) .
	rm -f $(WHEELHOUSE)/keepwarm-*.whl
	touch $@

demo: $(STAMP)
	@rm -rf $(DEMO_DIR)
	$(BIN)/keepwarm demo --dir $(DEMO_DIR)

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(TEST_STAMP)
	$(BIN)/mypy

pytest: $(TEST_STAMP) $(SYS_STAMP) $(WHEEL_STAMP)
	$(BIN)/pytest -q $(PYTEST_ARGS)

test: lint typecheck pytest

bench: $(STAMP) $(BENCH_STAMP)
	for b in $(filter-out bench/faults.py bench/benchlib.py,$(wildcard bench/*.py)); do $(BIN)/python $$b || exit 1; done

# The fault campaign (about 10 minutes; not part of `make test`): kill -9 during import, sync and
# digest delivery, concurrent sends, fuzzed mail and calendars, broken configs, a damaged and a
# read-only database, IMAP cut mid-FETCH. Prints trials/survived/lost/duplicated/tracebacks.
faults: $(TEST_STAMP) $(SYS_STAMP)
	$(BIN)/python bench/faults.py $(FAULTS_ARGS)

clean:
	rm -rf $(VENV) build .demo .pytest_cache .mypy_cache .ruff_cache
