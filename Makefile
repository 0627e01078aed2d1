# Two commands on a fresh machine: `make run` and `make test`. Both set themselves up.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXAMPLE ?= examples/contract.yaml

.PHONY: install system run test lint bench mutate clean

install: $(STAMP)

# BIND (named, rndc, named-checkzone, dig) and openssl, from Debian's packages
system:
	@bash .ci/system-deps

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

# The controller on an embedded default: a private named, two local regions, the
# contract's records. It prints how to watch the answer, fail a region and drain one.
run: install system
	PATH="$$PATH:/usr/sbin" $(BIN)/failover demo

test: install system
	PATH="$$PATH:/usr/sbin" $(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: install system
	@bash .ci/bench-deps
	$(BIN)/python bench/cli_startup.py
	$(BIN)/python bench/probes.py
	PATH="$$PATH:/usr/sbin" $(BIN)/python bench/dns_writes.py
	$(BIN)/python bench/route53.py
	PATH="$$PATH:/usr/sbin" $(BIN)/python bench/failover.py
	PATH="$$PATH:/usr/sbin" $(BIN)/python bench/flood.py
	PATH="$$PATH:/usr/sbin" $(BIN)/python bench/scale.py
	PATH="$$PATH:/usr/sbin" $(BIN)/python bench/fleet.py

# Mutation testing of the pure core (policies/, failover/health/, plan, reconcile, ownership)
# with the unit tests that need no servers ([tool.mutmut] in pyproject.toml): prints the
# score and the survivors. Slow (tens of minutes): not part of `make test`/CI. One worker,
# niced, so that it shares the machine; FAILOVER_MUTATE loads hypothesis's small profile.
MUTATE_CHILDREN ?= 1
mutate: install
	rm -rf mutants
	FAILOVER_MUTATE=1 nice -n 19 $(BIN)/mutmut run --max-children $(MUTATE_CHILDREN) >/dev/null || true
	$(BIN)/python .ci/mutation-score

clean:
	rm -rf mutants $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis build *.egg-info
