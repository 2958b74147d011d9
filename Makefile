# Two commands: `make run` (the default pipeline) and `make test` (the whole suite).
# Both create .venv with Python 3.11 on first use; later runs reuse it without reinstalling.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.spurlab-installed
CORES  ?= all
CONFIG ?= config/config.yaml
PROFILE ?= workflow/profiles/default
# Rules call `spurlab` and `snakemake` by name: put the venv first on PATH for every recipe.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup run test lint dry-run clean bench

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

run: setup
	$(BIN)/snakemake --cores $(CORES) --configfile $(CONFIG) --workflow-profile $(PROFILE)
	$(BIN)/snakemake --report results/report.html --configfile $(CONFIG) --workflow-profile $(PROFILE)

dry-run: setup
	$(BIN)/snakemake -n --cores $(CORES) --configfile $(CONFIG) --workflow-profile $(PROFILE)

test: setup
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/snakemake --lint --configfile $(CONFIG)
	$(BIN)/snakefmt --check Snakefile rules/

bench: setup
	$(BIN)/python bench/synth.py
	$(BIN)/python bench/feature_cache.py
	$(BIN)/python bench/npca.py

clean:
	rm -rf results logs benchmarks .snakemake
