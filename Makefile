# Install / test infrastructure for airflow-provider-resumable.
#
# Matrix (see `make help`):
#   .venv       Airflow 3.3 (primary, + ruff/mypy)  requirements/airflow-3.3.txt
#   .venv-3.2   Airflow 3.2                         requirements/airflow-3.2.txt
#   .venv-2.11  Airflow 2.11                        requirements/airflow-2.11.txt
#   .venv-3.4   Airflow 3.4 (its beta, 3.4.0b2)     requirements/airflow-3.4.txt
#   .venv-docs  Sphinx, for `make docs` only        requirements/docs.txt
#   .venv-deploy Airflow 3.3 + Celery, PostgreSQL   requirements/airflow-3.3-deploy.txt (test-deploy's Celery leg)
#
# A venv is rebuilt only when the sha256 of its lock file differs from the one stamped
# inside it (<venv>/.lock.sha256); otherwise it is reused. The project itself is installed
# editable with --no-deps on top, and re-installed (cheap) when pyproject.toml changes.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

PYTHON ?= python3
# uv from PATH, else `python3 -m uv` (installed on demand by `ensure-uv` with pip).
UV ?= $(shell command -v uv 2>/dev/null || echo "$(PYTHON) -m uv")
# Extra arguments for pytest, e.g. `make test-3.3 PYTEST_ARGS="-x -k cursor"`.
PYTEST_ARGS ?=

# Lock resolution: Python 3.11 on Linux, dependency universe frozen a few days after each
# Airflow release (2.11.2: 2026-03-14, 3.2.2: 2026-05-29, 3.3.2: 2026-09-17, 3.4.0b2: 2026-10-24).
LOCK_FLAGS := --quiet --upgrade --python-version 3.11 --python-platform linux
# 3.4 is locked on its beta: pre-releases only for what requirements/airflow-3.4.in pins to one
# (apache-airflow, apache-airflow-task-sdk, and apache-airflow-core, which only a pre-release satisfies).
EXCLUDE_NEWER_3.4  := 2026-10-27T00:00:00Z
EXCLUDE_NEWER_3.3  := 2026-09-20T00:00:00Z
EXCLUDE_NEWER_3.2  := 2026-06-01T00:00:00Z
EXCLUDE_NEWER_2.11 := 2026-03-17T00:00:00Z
# The 3.2 leg pins Databricks provider 7.16.1 (see requirements/airflow-3.2.in), which needs aiohttp
# 3.14 from just after the 3.2 freeze.
# The primary leg tests the newest official Databricks, Amazon and HTTP providers (and the
# common-compat they need), released after the 3.3 freeze; every other package stays frozen. The 3.4
# leg takes the same provider versions (they install with 3.4.0b2).
NEWEST_PROVIDERS := 2026-11-21T00:00:00Z
EXCLUDE_NEWER_3.3_PROVIDERS := $(foreach p,apache-airflow-providers-databricks apache-airflow-providers-amazon \
  apache-airflow-providers-http apache-airflow-providers-common-compat,--exclude-newer-package $(p)=$(NEWEST_PROVIDERS))

LOCK_3.4  := requirements/airflow-3.4.txt
LOCK_3.3  := requirements/airflow-3.3.txt
LOCK_3.2  := requirements/airflow-3.2.txt
LOCK_2.11 := requirements/airflow-2.11.txt
LOCK_DEPLOY := requirements/airflow-3.3-deploy.txt

VENV_3.4  := .venv-3.4
VENV_3.3  := .venv
VENV_3.2  := .venv-3.2
VENV_2.11 := .venv-2.11
VENV_DEPLOY := .venv-deploy

# The docs site: its own small venv (no Airflow: sphinx-autoapi reads the source without importing it).
LOCK_DOCS := requirements/docs.txt
VENV_DOCS := .venv-docs
DOCS_OUT  := build/docs/html
EXCLUDE_NEWER_DOCS := 2026-11-21T00:00:00Z

.PHONY: help ensure-uv venv venv-3.4 venv-3.3 venv-3.2 venv-2.11 venv-docs venv-deploy lock lint docs check-dist test \
        test-3.4 test-3.4-variable test-3.3 test-3.3-variable test-3.2 test-2.11 \
        test-parity test-parity-3.4 test-parity-3.2 test-parity-2.11 \
        test-deploy test-deploy-3.4 test-deploy-3.3 test-deploy-2.11 test-deploy-celery demo demo-databricks demo-emr demo-ui \
        bench ui-screenshots clean

help:
	@echo "Targets:"
	@echo "  venv               build/reuse all four venvs (.venv=3.3 primary, .venv-3.4, .venv-3.2, .venv-2.11)"
	@echo "  venv-3.4|venv-3.3|venv-3.2|venv-2.11   a single venv"
	@echo "  lint               ruff check + ruff format --check + mypy (in .venv)"
	@echo "  docs               the docs site (Sphinx, warnings are errors, nitpicky) -> $(DOCS_OUT)"
	@echo "  check-dist         build the wheel and sdist (build/dist) and check what they ship (LICENSE, NOTICE,"
	@echo "                     nothing a user does not need)"
	@echo "  test               lint, docs, check-dist, the six matrix legs (two at a time), the parity suites,"
	@echo "                     then test-deploy; stops at the first red step"
	@echo "  test-3.4           Airflow 3.4 (3.4.0b2), AIRFLOW__RESUMABLE__STATE_BACKEND=auto (native store);"
	@echo "                     the 3.3 and 3.4 legs run the UI tests (tests/ui/) in Debian's Chromium, installed"
	@echo "                     with apt-get when missing (scripts/ensure-chromium.sh)"
	@echo "  test-3.4-variable  Airflow 3.4 (3.4.0b2), AIRFLOW__RESUMABLE__STATE_BACKEND=variable"
	@echo "                     (without the tests that pin their own store: test-3.4 runs them)"
	@echo "  test-3.3           Airflow 3.3, AIRFLOW__RESUMABLE__STATE_BACKEND=auto (native store)"
	@echo "  test-3.3-variable  Airflow 3.3, AIRFLOW__RESUMABLE__STATE_BACKEND=variable"
	@echo "                     (without the tests that pin their own store: test-3.3 runs them)"
	@echo "  test-3.2           Airflow 3.2, backend auto (-> variable)"
	@echo "  test-2.11          Airflow 2.11, backend auto (-> variable)"
	@echo "  test-parity        the official providers' released unit tests against our drop-ins (Airflow 3.3;"
	@echo "                     also test-parity-3.4, test-parity-3.2, test-parity-2.11); see tests/parity/"
	@echo "  test-deploy        the SIGKILL fault suite on real deployments (tests/deploy/): 3.4 and 3.3 LocalExecutor"
	@echo "                     on SQLite, 2.11 LocalExecutor, 3.3 Celery (2 workers) on PostgreSQL; also"
	@echo "                     test-deploy-3.4, test-deploy-3.3, test-deploy-2.11, test-deploy-celery;"
	@echo "                     summary in build/deploy/"
	@echo "  demo               scripts/demo.sh: the example DAG fails part way and resumes on retry"
	@echo "  demo-databricks    scripts/demo_databricks.sh: lost Databricks responses, one run per task, and a"
	@echo "                     failed task repaired (1 task again, the official retry 10) (fake Jobs API)"
	@echo "  demo-emr           scripts/demo_emr.sh: the EMR example DAG on a local moto server; each first try"
	@echo "                     dies after submitting, each retry finds its job instead of starting another"
	@echo "  demo-ui            scripts/demo_ui.sh: Airflow's API server on the demo's home (127.0.0.1:8080, admin/admin),"
	@echo "                     to open the Resumable tab of the demo's task instances (runs the demo first if needed)"
	@echo "  ui-screenshots     scripts/ui-screenshots.sh: PNGs of the Resumable tab for its four states (Airflow 3.3,"
	@echo "                     Chromium) -> docs/_static/ui/"
	@echo "  bench              benchmarks/run.py: checkpoint costs and policies (real task supervisor) -> docs/benchmarks.md"
	@echo "  lock               re-resolve requirements/*.txt from requirements/*.in"
	@echo "  clean              remove venvs, build/ and caches"
	@echo "Variables: PYTEST_ARGS='...' (extra pytest args), PYTHON=python3, UV=uv"

# ---------------------------------------------------------------------------- uv

ensure-uv:
	@if ! $(UV) --version >/dev/null 2>&1; then \
	  echo "==> uv not found; installing it with $(PYTHON) -m pip"; \
	  $(PYTHON) -m pip install --quiet "uv>=0.5" \
	    || $(PYTHON) -m pip install --quiet --user "uv>=0.5" \
	    || $(PYTHON) -m pip install --quiet --user --break-system-packages "uv>=0.5"; \
	fi
	@$(UV) --version >/dev/null

# ---------------------------------------------------------------------------- venvs

# $(call ensure_venv,<venv dir>,<lock file>)
define ensure_venv
	@want="$$($(PYTHON) -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' $(2))"; \
	have="$$(cat $(1)/.lock.sha256 2>/dev/null || true)"; \
	if [ "$$want" = "$$have" ] && $(1)/bin/python -c '' >/dev/null 2>&1; then \
	  echo "==> $(1): matches $(2) (sha256 $${want:0:12}), reusing"; \
	else \
	  echo "==> $(1): (re)building from $(2)"; \
	  start=$$SECONDS; \
	  rm -rf $(1); \
	  $(UV) venv --quiet -p 3.11 $(1); \
	  $(UV) pip install --quiet --python $(1)/bin/python -r $(2); \
	  rm -f $(1)/.project.sha256; \
	  echo "$$want" > $(1)/.lock.sha256; \
	  echo "==> $(1): built in $$((SECONDS - start))s"; \
	fi; \
	pwant="$$($(PYTHON) -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' pyproject.toml)"; \
	if [ "$$pwant" != "$$(cat $(1)/.project.sha256 2>/dev/null || true)" ]; then \
	  echo "==> $(1): installing the project (editable, --no-deps)"; \
	  $(UV) pip install --quiet --python $(1)/bin/python --no-deps -e .; \
	  echo "$$pwant" > $(1)/.project.sha256; \
	fi
endef

venv: venv-3.3 venv-3.4 venv-3.2 venv-2.11

venv-3.4: ensure-uv
	$(call ensure_venv,$(VENV_3.4),$(LOCK_3.4))

venv-3.3: ensure-uv
	$(call ensure_venv,$(VENV_3.3),$(LOCK_3.3))

venv-3.2: ensure-uv
	$(call ensure_venv,$(VENV_3.2),$(LOCK_3.2))

venv-2.11: ensure-uv
	$(call ensure_venv,$(VENV_2.11),$(LOCK_2.11))

venv-docs: ensure-uv
	$(call ensure_venv,$(VENV_DOCS),$(LOCK_DOCS))
venv-deploy: ensure-uv
	$(call ensure_venv,$(VENV_DEPLOY),$(LOCK_DEPLOY))

# ---------------------------------------------------------------------------- locks

lock: ensure-uv
	$(UV) pip compile $(LOCK_FLAGS) --exclude-newer $(EXCLUDE_NEWER_3.3) $(EXCLUDE_NEWER_3.3_PROVIDERS) \
	  requirements/airflow-3.3.in -o $(LOCK_3.3)
	$(UV) pip compile $(LOCK_FLAGS) --exclude-newer $(EXCLUDE_NEWER_3.4) $(EXCLUDE_NEWER_3.3_PROVIDERS) \
	  --prerelease=if-necessary-or-explicit requirements/airflow-3.4.in -o $(LOCK_3.4)
	$(UV) pip compile $(LOCK_FLAGS) --exclude-newer $(EXCLUDE_NEWER_3.2) \
	  --exclude-newer-package apache-airflow-providers-databricks=$(NEWEST_PROVIDERS) \
	  --exclude-newer-package aiohttp=2026-06-10T00:00:00Z \
	  requirements/airflow-3.2.in -o $(LOCK_3.2)
	$(UV) pip compile $(LOCK_FLAGS) --exclude-newer $(EXCLUDE_NEWER_2.11) \
	  requirements/airflow-2.11.in -o $(LOCK_2.11)
	$(UV) pip compile $(LOCK_FLAGS) --exclude-newer $(EXCLUDE_NEWER_DOCS) requirements/docs.in -o $(LOCK_DOCS)
	$(UV) pip compile $(LOCK_FLAGS) --exclude-newer $(EXCLUDE_NEWER_3.3) $(EXCLUDE_NEWER_3.3_PROVIDERS) \
	  requirements/airflow-3.3-deploy.in -o $(LOCK_DEPLOY)

# ---------------------------------------------------------------------------- lint / test

lint: venv-3.3
	$(VENV_3.3)/bin/ruff check .
	$(VENV_3.3)/bin/ruff format --check .
	$(VENV_3.3)/bin/mypy

# -W --keep-going: every warning is an error, and all of them are reported in one run. -E: autoapi
# regenerates its pages each time, so a stale environment could hide a broken docstring.
docs: venv-docs
	@start=$$SECONDS; \
	rm -rf $(DOCS_OUT); \
	$(VENV_DOCS)/bin/sphinx-build -b html -W --keep-going -n -E -q -d build/docs/doctrees docs $(DOCS_OUT); \
	echo "==> docs: $(DOCS_OUT)/index.html built in $$((SECONDS - start))s"

# uv build makes the sdist, then the wheel from it, so a file the sdist lacks breaks the wheel build.
check-dist: ensure-uv
	@rm -rf build/dist
	@$(UV) build --quiet --out-dir build/dist .
	@$(PYTHON) scripts/check_dist.py build/dist

# The unit and integration legs run two at a time (scripts/run-parallel.sh: each in one process, each
# with its own AIRFLOW_HOME), after every venv is built, so that no two legs build one venv at once.
# The deployment legs (test-deploy) spend most of their time waiting on heartbeats and retry delays:
# the 3.3 and 2.11 SQLite ones run side by side, then the 3.4 SQLite one beside the Celery one. Any
# red leg stops the run.
test: lint
	@$(MAKE) docs
	@$(MAKE) check-dist
	@$(MAKE) venv venv-deploy
	@scripts/ensure-chromium.sh
	@scripts/run-parallel.sh "$(MAKE)" test-3.3 test-3.4
	@scripts/run-parallel.sh "$(MAKE)" test-3.3-variable test-3.4-variable
	@scripts/run-parallel.sh "$(MAKE)" test-3.2 test-2.11
	@$(MAKE) test-parity
	@$(MAKE) test-parity-3.4
	@$(MAKE) test-parity-3.2
	@$(MAKE) test-parity-2.11
	@$(MAKE) test-deploy
	@echo "==> all matrix legs green"

# scripts/run-leg.sh <leg> <venv> <state backend> [pytest args]. The 3.3 and 3.4 legs run the UI tests
# (tests/ui/) in Debian's Chromium, which scripts/ensure-chromium.sh installs when it is missing.
test-3.4: venv-3.4
	@scripts/ensure-chromium.sh
	@scripts/run-leg.sh 3.4 $(VENV_3.4) auto $(PYTEST_ARGS)

test-3.4-variable: venv-3.4
	@scripts/ensure-chromium.sh
	@scripts/run-leg.sh 3.4-variable $(VENV_3.4) variable $(PYTEST_ARGS)

test-3.3: venv-3.3
	@scripts/ensure-chromium.sh
	@scripts/run-leg.sh 3.3 $(VENV_3.3) auto $(PYTEST_ARGS)

test-3.3-variable: venv-3.3
	@scripts/ensure-chromium.sh
	@scripts/run-leg.sh 3.3-variable $(VENV_3.3) variable $(PYTEST_ARGS)

test-3.2: venv-3.2
	@scripts/run-leg.sh 3.2 $(VENV_3.2) auto $(PYTEST_ARGS)

test-2.11: venv-2.11
	@scripts/run-leg.sh 2.11 $(VENV_2.11) auto $(PYTEST_ARGS)

# scripts/run-parity.sh <leg> <venv> [pytest args]: the sdists of the installed official providers
# are downloaded once per version (pip download, into ~/.cache/airflow-provider-resumable).
test-parity: venv-3.3
	@PYTHON=$(PYTHON) scripts/run-parity.sh 3.3 $(VENV_3.3) $(PYTEST_ARGS)

test-parity-3.4: venv-3.4
	@PYTHON=$(PYTHON) scripts/run-parity.sh 3.4 $(VENV_3.4) $(PYTEST_ARGS)

test-parity-3.2: venv-3.2
	@PYTHON=$(PYTHON) scripts/run-parity.sh 3.2 $(VENV_3.2) $(PYTEST_ARGS)

test-parity-2.11: venv-2.11
	@PYTHON=$(PYTHON) scripts/run-parity.sh 2.11 $(VENV_2.11) $(PYTEST_ARGS)

# scripts/run-deploy.sh <leg> <venv> [driver args]: one real deployment per leg, every scenario at once.
# Extra driver arguments with DEPLOY_ARGS, e.g. DEPLOY_ARGS="--only toy_mid_poll".
DEPLOY_ARGS ?=

test-deploy: venv-3.3 venv-3.4 venv-2.11 venv-deploy
	@scripts/run-parallel.sh "$(MAKE)" test-deploy-3.3 test-deploy-2.11
	@scripts/run-parallel.sh "$(MAKE)" test-deploy-3.4 test-deploy-celery

test-deploy-3.4: venv-3.4
	@scripts/run-deploy.sh 3.4 $(VENV_3.4) $(DEPLOY_ARGS)

test-deploy-3.3: venv-3.3
	@scripts/run-deploy.sh 3.3 $(VENV_3.3) $(DEPLOY_ARGS)

test-deploy-2.11: venv-2.11
	@scripts/run-deploy.sh 2.11 $(VENV_2.11) $(DEPLOY_ARGS)

test-deploy-celery: venv-deploy
	@scripts/run-deploy.sh 3.3-celery $(VENV_DEPLOY) $(DEPLOY_ARGS)

# ---------------------------------------------------------------------------- demo / bench

demo: venv-3.3
	@scripts/demo.sh

demo-databricks: venv-3.3
	@scripts/demo_databricks.sh

# The API server on the demo's home, to open the Resumable tab (Airflow 3.1+) of the demo's task instances.
demo-ui: venv-3.3
	@scripts/demo_ui.sh

demo-emr: venv-3.3
	@scripts/demo_emr.sh

bench: venv-3.3
	@scripts/bench.sh

ui-screenshots: venv-3.3
	@VENV=$(VENV_3.3) scripts/ui-screenshots.sh

# ---------------------------------------------------------------------------- clean

clean:
	rm -rf $(VENV_3.4) $(VENV_3.3) $(VENV_3.2) $(VENV_2.11) $(VENV_DEPLOY) $(VENV_DOCS) build .mypy_cache .ruff_cache .pytest_cache
	find . -path ./.git -prune -o \( -name __pycache__ -o -name '*.egg-info' \) -type d -print0 \
	  | xargs -0 rm -rf
