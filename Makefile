# fti-operator — the two commands of the quickstart are `make demo` and `make test`.
# Everything a fresh machine needs is installed from here; nothing relies on what a
# previous run left behind except the caches (venv, Go-built control plane), which
# are rebuilt when missing.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
# The default state directory of `fti local` (operator/fti_operator/cli_common.py DEFAULT_STATE_DIR):
# after `make demo`, the README's `fti local status` reads what the demo wrote.
STATE_DIR ?= .fti/local
INSTALL_LOG := $(VENV)/install.log
PYTEST_ARGS ?=
# Bytecode is a cache like the wheelhouse. The venv is installed --no-compile (below), so with
# PYTHONDONTWRITEBYTECODE set (as some shells and CI images do) every Python process - each
# `fti` command, operator start and pipeline pod a test runs - compiled pandas, pyarrow, kopf
# and our own modules from source again, seconds of CPU each. Python writes the bytecode of
# what it imports once, into the venv and the (gitignored) __pycache__ directories.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: help install system-deps controlplane crds manifests demo lint test test-unit test-integration clean images \
        node-deps images-auto e2e demo-cluster bench-features bench-training bench-inference bench-operator \
        bench-rollouts bench-controlplane

include tests/controlplane/Makefile.inc

help:
	@echo "make demo          create .venv, install, run the fraud example end to end with online predictions"
	@echo "make test          install what tests need (venv, redis-server, Go-built control plane), lint, run them"
	@echo "make lint          ruff (lint + format check), mypy, import-linter layer contracts"
	@echo "make crds          regenerate crds/ (and the chart's copy) from the API models"
	@echo "make manifests     regenerate deploy/install.yaml and docs/install.md's values reference from the chart"
	@echo "make controlplane  build etcd, kube-apiserver, kube-controller-manager, kubectl, helm from upstream Go modules"
	@echo "make controlplane-clean  delete those binaries and their Go caches"
	@echo "make demo-cluster the fraud example on the embedded cluster (real node, built images, the chart); root"
	@echo "make e2e          end-to-end tests on a real node (containerd, kubelet) or kind; builds what they need"
	@echo "make images       build the operator, feature, training and inference images (docker, else podman)"
	@echo "make bench-features | bench-training | bench-inference | bench-operator | bench-rollouts | bench-controlplane"

# pip's output (and setuptools' warnings about editable installs) goes to $(INSTALL_LOG), so
# the demo's own output is what a newcomer reads; a failed install prints the log's tail.
#
# Every third-party wheel is kept in a wheelhouse keyed by the dependency lists (both
# pyproject files, requirements-dev.txt) and the Python version, like the control plane's
# cache: the first install resolves against the index and fills it (`pip wheel`), every
# later one (a fresh clone, CI) installs from it without the index, which skips pip's
# network round trips and its backtracking through the boto3/aiobotocore versions.
# A changed dependency list is a new key, so nothing stale is ever installed.
# --no-compile: byte-compiling all ~200 packages at install time was most of the install's
# CPU; Python compiles (and caches in the venv) only the modules something imports.
EXTRAS_OPERATOR := controller
EXTRAS_PIPELINES := training,serving,s3
CACHE_DIR = $${FTI_CACHE_DIR:-$$HOME/.cache/fti-operator}
WHEELS_KEY = $(shell cat operator/pyproject.toml pipeline_images/pyproject.toml requirements-dev.txt | sha256sum | cut -c1-12)-$(shell $(PYTHON) -c 'import platform, sys; print(f"py{sys.version_info[0]}{sys.version_info[1]}-{platform.machine()}")')
WHEELHOUSE = $(CACHE_DIR)/wheels/$(WHEELS_KEY)
$(STAMP): operator/pyproject.toml pipeline_images/pyproject.toml requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing into $(VENV) (pip output: $(INSTALL_LOG))"
	@start=$$(date +%s); how="from the wheelhouse"; \
	 { wheels="$(WHEELHOUSE)"; \
	   if [ ! -f "$$wheels/.complete" ]; then \
	     echo "filling the wheelhouse $$wheels"; mkdir -p "$$(dirname "$$wheels")"; \
	     tmp="$$(mktemp -d "$$wheels.XXXXXX")"; \
	     if $(PIP) install --upgrade pip \
	       && $(PY) tools/requirements.py --build-system operator/pyproject.toml pipeline_images/pyproject.toml >"$$tmp/requirements.txt" \
	       && $(PY) tools/requirements.py 'operator/pyproject.toml[$(EXTRAS_OPERATOR)]' \
	            'pipeline_images/pyproject.toml[$(EXTRAS_PIPELINES)]' >>"$$tmp/requirements.txt" \
	       && $(PIP) wheel --wheel-dir "$$tmp" pip -r "$$tmp/requirements.txt" -r requirements-dev.txt; then \
	       touch "$$tmp/.complete"; mv -T "$$tmp" "$$wheels" 2>/dev/null || rm -rf "$$tmp"; \
	     else rm -rf "$$tmp"; false; fi; \
	   fi \
	   && $(PIP) install --no-index --find-links "$$wheels" --upgrade pip \
	   && $(PIP) install --no-index --find-links "$$wheels" --no-compile -e './operator[$(EXTRAS_OPERATOR)]' \
	        -e './pipeline_images[$(EXTRAS_PIPELINES)]' -r requirements-dev.txt; \
	 } > $(INSTALL_LOG) 2>&1 || { tail -n 40 $(INSTALL_LOG); echo "pip install failed: see $(INSTALL_LOG)" >&2; exit 1; }; \
	 grep -q "^filling the wheelhouse" $(INSTALL_LOG) && how="filling the wheelhouse first"; \
	 echo "installed in $$(( $$(date +%s) - start ))s ($$how)"
	@touch $@

install: $(STAMP)

# Debian's redis-server backs the Redis online-store tests (started by a pytest fixture).
system-deps:
	@if ! command -v redis-server >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing redis-server (Debian package)"; start=$$(date +%s); \
	    apt-get -o DPkg::Lock::Timeout=600 update -qq && DEBIAN_FRONTEND=noninteractive \
	      apt-get -o DPkg::Lock::Timeout=600 install -y -qq redis-server >/dev/null && \
	    echo "installed redis-server in $$(( $$(date +%s) - start ))s"; \
	  else echo "redis-server missing: apt-get install redis-server (Redis tests will be skipped)"; fi; \
	fi

controlplane:
	bash tests/controlplane/build.sh

crds: $(STAMP)
	$(PY) -m fti_operator.api.crd --out crds/
	rm -rf charts/fti-operator/crds && cp -r crds charts/fti-operator/crds

# deploy/install.yaml: the chart rendered with its defaults (tools/install_manifest.py), and
# docs/install.md's values reference from values.schema.json (tools/values_reference.py);
# unit tests fail when either is stale. After `make crds` or any chart change.
manifests: $(STAMP)
	$(PY) tools/install_manifest.py
	$(PY) tools/values_reference.py

# The batch InferenceService scores new transactions from the example's data volume
# (/var/lib/fti in a cluster, $(STATE_DIR)/volume here).
demo: $(STAMP)
	$(PY) -m fti_pipelines.examples fraud-score-requests --out $(STATE_DIR)/volume/fraud/score-requests/
	$(VENV)/bin/fti local apply -f examples/fraud/ --state-dir $(STATE_DIR) --predict 5 --shifted 500
	$(VENV)/bin/fti local monitor fraud-online -n fraud --state-dir $(STATE_DIR)
	@echo "state: $(STATE_DIR). Next: source $(VENV)/bin/activate; fti local status$(if $(filter .fti/local,$(STATE_DIR)),, --state-dir $(STATE_DIR)) (README.md)"

# Every session ends with its 30 slowest setups, calls and teardowns, so a CI log says where
# the time went (docs/contributing.md, "How long CI takes, and where").
PYTEST_DURATIONS ?= --durations=30

# pytest exits 5 when it collected no test: that must fail, not pass. $(1): paths, $(2): options.
define run_pytest
	set +e; $(VENV)/bin/pytest $(1) $(2) $(PYTEST_DURATIONS) $(PYTEST_ARGS); rc=$$?; set -e; \
	if [ $$rc -eq 5 ]; then echo "ERROR: pytest ran no tests in $(1)" >&2; exit 1; fi; exit $$rc
endef

# Two pytest sessions at once: $(1) in the background, its report kept in a file and printed
# after that of $(2) (with options $(3)). Fails when either fails or ran no tests. The
# background session keeps no .pytest_cache (two sessions would write the same files).
define run_pytest_beside
	beside_log=$$(mktemp); trap 'rm -f "$$beside_log"' EXIT; \
	( $(call run_pytest,$(1),-p no:cacheprovider) ) >"$$beside_log" 2>&1 & beside=$$!; \
	set +e; ( $(call run_pytest,$(2),$(3)) ); rc=$$?; wait $$beside; rc_beside=$$?; set -e; \
	echo "================ $(1), run beside $(2) $(3) ================"; cat "$$beside_log"; \
	if [ $$rc -ne 0 ]; then exit $$rc; fi; exit $$rc_beside
endef

# One tool per line, so the one that fails is the one make names. Config: ruff.toml,
# mypy.ini, .importlinter at the repo root (none in operator/ or pipeline_images/).
# mypy's cache lives with the other caches, so a fresh clone does not re-check every
# library stub from scratch (~2 minutes on a busy machine): mypy trusts a cache entry only
# when the source's hash matches, whichever clone wrote it.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy --cache-dir "$(CACHE_DIR)/mypy"
	$(VENV)/bin/lint-imports

# Lint first: a layer or type error fails before the integration tests start.
# tests/e2e runs on a real node (tests/node) as root with the images built; elsewhere its
# tests skip, saying why (CI sets FTI_REQUIRE_NODE=1: a skip there is a failure).
# tests/unit (CPU-bound, nothing shared with the other suites) runs beside the suites that
# mostly wait on the control plane, the operator and the node: its minutes overlap theirs.
test: lint system-deps node-deps controlplane-auto images-auto
	$(call run_pytest_beside,tests/unit,tests,--ignore=tests/unit)

test-unit: $(STAMP)
	$(call run_pytest,tests/unit)

test-integration: $(STAMP) system-deps controlplane-auto
	$(call run_pytest,tests/integration)

clean:
	rm -rf .fti .pytest_cache

# Benchmarks: rerunnable, results recorded by hand in bench/RESULTS.md (never timed tests).
bench-features: $(STAMP)
	$(PY) bench/features_validation.py && $(PY) bench/features_ingest.py && $(PY) bench/features_materialize.py

bench-training: $(STAMP)
	bash bench/feast/setup.sh
	$(PY) bench/training_join.py

bench-inference: $(STAMP)
	$(PY) bench/inference_lookup.py && $(PY) bench/inference_online.py && $(PY) bench/inference_batch.py

bench-operator: $(STAMP) controlplane
	$(PY) bench/operator_bench.py

bench-rollouts: $(STAMP) controlplane
	$(PY) bench/rollout_latency.py

bench-controlplane: $(STAMP)
	$(PY) bench/controlplane_cost.py

# Images and the real node (tests/node/README.md, docs/images.md).
images:
	bash images/build.sh

# As root with podman (the local base needs debootstrap), or with a Docker engine.
images-auto:
	@if [ "$${FTI_REQUIRE_NODE:-}" = 1 ] || { [ "$$(id -u)" = 0 ] && command -v podman >/dev/null; } \
	    || docker info >/dev/null 2>&1; then bash images/build.sh; \
	else echo "images: no podman as root and no Docker engine, so the e2e tests will be skipped"; fi

# The real node's system packages; apt waits for a dpkg lock held by another install.
node-deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  need=""; for p in containerd runc containernetworking-plugins nftables conntrack podman debootstrap; do \
	    dpkg -s $$p >/dev/null 2>&1 || need="$$need $$p"; done; \
	  if [ -n "$$need" ]; then echo "installing$$need (Debian packages)"; start=$$(date +%s); \
	    apt-get -o DPkg::Lock::Timeout=600 update -qq && DEBIAN_FRONTEND=noninteractive \
	      apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $$need >/dev/null && \
	    echo "installed$$need in $$(( $$(date +%s) - start ))s"; fi; \
	else echo "node-deps: needs root and apt-get (containerd runc containernetworking-plugins nftables conntrack podman debootstrap)"; fi

# End to end on real containers: the node (tests/node) here, kind where Docker is.
e2e: $(STAMP) node-deps controlplane images
	$(call run_pytest,tests/e2e)

# The fraud example on the embedded cluster: control plane + real node + built images + chart.
demo-cluster: $(STAMP) system-deps node-deps controlplane images
	PYTHONPATH=tests $(PY) -m node.demo
