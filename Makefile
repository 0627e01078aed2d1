# Two commands on a fresh machine: `make run` and `make test`. Both set themselves up.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXAMPLE ?= examples/contract.yaml

.PHONY: install system run test lint bench clean

install: $(STAMP)

# BIND (named, rndc, named-checkzone, dig) and openssl, from Debian's packages
system:
	@bash .ci/system-deps

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

# Until the controller service lands, `run` validates the example config and shows the
# plan for current health and for a failed primary region. `plan` exits 2 when it has
# changes to show, which is expected here.
run: install system
	$(BIN)/failover validate --config $(EXAMPLE)
	@echo; echo "== plan with every region healthy"; \
	$(BIN)/failover plan --no-read --config $(EXAMPLE); rc=$$?; [ $$rc -eq 0 ] || [ $$rc -eq 2 ]
	@echo; echo "== plan if us-east-1 failed"; \
	$(BIN)/failover plan --no-read --config $(EXAMPLE) --assume us-east-1=down; rc=$$?; [ $$rc -eq 0 ] || [ $$rc -eq 2 ]

test: install system
	PATH="$$PATH:/usr/sbin" $(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: install system
	$(BIN)/python bench/cli_startup.py
	$(BIN)/python bench/probes.py
	PATH="$$PATH:/usr/sbin" $(BIN)/python bench/dns_writes.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis build *.egg-info
