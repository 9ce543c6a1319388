# heroes: `make test` and `make reproduce` each set themselves up on a fresh clone.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.setup-stamp

# Overrides for a quick look, e.g. `make reproduce SEEDS=1 SIZE=96 PER_CLASS=60 EPOCHS=2`.
SEEDS ?=
SIZE ?=
PER_CLASS ?=
EPOCHS ?=
REPRODUCE_ARGS := $(if $(SEEDS),--seeds $(SEEDS)) $(if $(SIZE),--image-size $(SIZE)) \
	$(if $(PER_CLASS),--per-class $(PER_CLASS)) $(if $(EPOCHS),--epochs $(EPOCHS))

.PHONY: help setup test unit smoke reproduce check-reports bench clean-cache

help: ## show this help
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

setup: $(STAMP) ## create .venv and install the pinned requirements

unit: $(STAMP) ## unit tests only (pytest tests/)
	HEROES_OFFLINE=1 $(PY) -m pytest -q tests

smoke: $(STAMP) ## notebooks under nbval with the small smoke profile
	HEROES_OFFLINE=1 $(PY) tests/smoke_profile.py --out .smoke
	@if ls .smoke/*.ipynb >/dev/null 2>&1; then \
		HEROES_OFFLINE=1 $(PY) -m pytest -q --nbval-lax -p no:cacheprovider .smoke; \
	else echo "smoke: no notebooks to run"; fi

test: unit smoke ## everything CI runs: unit tests, then every notebook in the smoke profile

reproduce: $(STAMP) ## run notebooks 01-04 with papermill into reports/notebooks and write reports/summary.md
	$(PY) -m heroes reproduce $(REPRODUCE_ARGS)

check-reports: $(STAMP) ## say whether the committed reports were made by the code as it is now (their run card)
	$(PY) -c "from heroes.reporting import run_card; problems = run_card.check_reports(); print('\\n'.join(problems) or 'reports match the code')"

bench: $(STAMP) ## benchmarks: scan, clean, features, memory, then naive vs cached training (about an hour)
	$(PY) benchmarks/scan_benchmark.py
	$(PY) benchmarks/clean_benchmark.py
	$(PY) benchmarks/feature_benchmark.py
	$(PY) benchmarks/feature_benchmark.py --backbone efficientnet_lite0 --weights imagenet --policy linear_probe
	HEROES_OFFLINE=1 $(PY) benchmarks/transfer_benchmark.py
	$(PY) benchmarks/memory_benchmark.py
	HEROES_OFFLINE=1 $(PY) -m heroes bench
	$(PY) benchmarks/suffix_floor.py

clean-cache: ## delete derived caches (data/processed); never touches data/raw
	rm -rf data/processed/arrays-* data/processed/features
