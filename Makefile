# Redis Patterns Lab. `make lab` opens the workbook, `make test` checks it; both set up .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: lab test unit notebooks normalize site lint bench clean

$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11+ is required (set PYTHON=python3.12, say)")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt -e .
	@touch $@

# Jupyter refuses to run as root unless told; containers and CI machines often are root.
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)

lab: $(STAMP)  ## open JupyterLab at the first notebook
	$(BIN)/jupyter lab --ServerApp.ip=127.0.0.1 $(ALLOW_ROOT) notebooks/00_setup_and_round_trips.ipynb

test: lint  ## lint, unit tests against a real server, then every notebook under nbval
	$(BIN)/python -m pytest

unit: $(STAMP)  ## the unit tests only
	$(BIN)/python -m pytest tests

notebooks: $(STAMP)  ## re-execute every notebook in place so stored outputs and charts are fresh
	$(BIN)/jupyter nbconvert --to notebook --execute --inplace \
		--ExecutePreprocessor.timeout=300 notebooks/[0-9][0-9]_*.ipynb
	$(BIN)/python tools/normalize_notebooks.py

normalize: $(STAMP)  ## store notebooks as JupyterLab writes them (metadata only, no execution)
	$(BIN)/python tools/normalize_notebooks.py

site: $(STAMP)  ## static HTML of every notebook (stored outputs, nothing executed) in site/
	$(BIN)/python tools/build_site.py site

lint: $(STAMP)  ## ruff over the tree, the type checker over labkit/
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: $(STAMP)  ## speed and memory targets (by hand; never part of `make test`)
	@test -f requirements-bench.txt && $(BIN)/python -m pip install --quiet -r requirements-bench.txt || true
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
