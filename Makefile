# ctrain — common tasks. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml devtools/pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test,report]' -e ./devtools
	@touch $@

.PHONY: install
install: $(STAMP) ## Create .venv with ctrain, its development tooling and pinned dependencies.

.PHONY: binaries
binaries: $(STAMP) ## Build (once) or find the Kubernetes, etcd and helm binaries.
	$(BIN)/ctrain dev binaries

.PHONY: lint
lint: $(STAMP) ## ruff (lint + format check), mypy (strict for api, trainer, serving, registry) and the import contracts (.importlinter).
	$(BIN)/ruff check operator devtools tests benchmarks deploy examples
	$(BIN)/ruff format --check operator devtools tests benchmarks deploy examples
	$(BIN)/mypy
	$(BIN)/lint-imports

.PHONY: format
format: $(STAMP) ## Format the code with ruff.
	$(BIN)/ruff check --fix operator devtools tests benchmarks deploy examples
	$(BIN)/ruff format operator devtools tests benchmarks deploy examples

.PHONY: generate
generate: $(STAMP) ## Regenerate the CRDs (crds/, package and chart copies) and the argocd-cm patch.
	$(BIN)/ctrain generate --root .
	$(BIN)/python deploy/argocd/render_cm.py

.PHONY: test-tools
test-tools: ## Install promtool and Chromium for the tests that drive them (Debian apt, once).
	tests/tools/ensure-tools.sh

.PHONY: test
test: lint binaries test-tools ## Everything CI runs: lint, unit, integration (the sandbox and its real node), then the image and kind tests.
	$(BIN)/pytest tests/unit tests/integration
	$(MAKE) --no-print-directory test-e2e

.PHONY: test-unit
test-unit: binaries test-tools ## Unit tests only (no cluster; the chart tests use helm).
	$(BIN)/pytest tests/unit

.PHONY: test-integration
test-integration: binaries ## Integration tests against the local sandbox (its node runs the checkout's image).
	$(BIN)/pytest tests/integration

.PHONY: reliability
reliability: $(STAMP) ## The reliability suites: hostile inputs, crashes at the worst moment (prints tables).
	$(BIN)/pytest -m reliability -s tests/reliability

.PHONY: demo
demo: binaries ## The whole story in the local sandbox: train, serve, retrain, promote.
	$(BIN)/python examples/demo.py

.PHONY: demo-down
demo-down: $(STAMP) ## Stop the demo's sandbox.
	$(BIN)/ctrain dev down

.PHONY: up
up: binaries ## Start the local sandbox (control plane, a real node, S3, operator).
	$(BIN)/ctrain dev up

.PHONY: down
down: $(STAMP) ## Stop the local sandbox.
	$(BIN)/ctrain dev down

.PHONY: bench-operator
bench-operator: binaries ## The operator benchmark in its own sandbox (about 15 minutes): a table against the goals.
	$(BIN)/python benchmarks/operator/run.py $(BENCH_ARGS)

.PHONY: bench-trainer
bench-trainer: $(STAMP) ## Trainer overhead: ctrain train vs a plain scikit-learn fit + skops save, 1,000,000 rows from S3 (about 10 minutes).
	$(BIN)/python benchmarks/trainer/run.py $(BENCH_ARGS)

.PHONY: bench-fresh
bench-fresh: binaries ## Time to a fresh model in its own sandbox: a PUT of new data to the new champion serving, 5 runs (about 5 minutes).
	$(BIN)/python benchmarks/fresh/run.py $(BENCH_ARGS)

.PHONY: bench
bench: bench-trainer bench-fresh bench-operator ## Every benchmark, one after the other (about an hour with the serving one).
	$(MAKE) -C benchmarks/serving run

KIND_CLUSTER ?= ctrain
E2E_CLUSTER ?= ctrain-e2e
IMAGE ?= ctrain:dev

.PHONY: image
image: $(STAMP) ## Build the image ctrain:dev (your Docker, else the project's own engine; a local base where none can be pulled).
	$(BIN)/ctrain dev image --tag $(IMAGE)

.PHONY: test-image
test-image: $(STAMP) ## Run the image as a restricted pod would: --help, train into S3, serve a prediction.
	CTRAIN_E2E_IMAGE=$(IMAGE) $(BIN)/pytest tests/e2e/test_image.py -rs

.PHONY: engine-down
engine-down: $(STAMP) ## Stop the project's own Docker engine (images stay cached).
	$(BIN)/ctrain dev engine down
KIND_ENV = $(BIN)/python tests/e2e/conftest.py

.PHONY: node-image
node-image: binaries ## Build the kind node image here (where kindest/node cannot be pulled).
	$(BIN)/ctrain dev node-image

.PHONY: kind-up
kind-up: binaries ## Create the kind cluster from kind-config.yaml (kind built if not installed).
	$(KIND_ENV) up --cluster $(KIND_CLUSTER)

.PHONY: kind-deploy
kind-deploy: binaries ## Build the image, load it into kind, start S3 (moto), install the chart.
	$(KIND_ENV) deploy --cluster $(KIND_CLUSTER) --image $(IMAGE)

.PHONY: kind-demo
kind-demo: binaries ## Train and serve iris on kind (after kind-deploy), on the NodePort 30080.
	$(KIND_ENV) demo --cluster $(KIND_CLUSTER) --image $(IMAGE)

.PHONY: kind-down
kind-down: $(STAMP) ## Delete the kind cluster.
	$(KIND_ENV) down --cluster $(KIND_CLUSTER)

.PHONY: test-e2e
test-e2e: binaries ## The image and kind tiers (tests/e2e): the image, then the stories on kind.
	CTRAIN_E2E_CLUSTER=$(E2E_CLUSTER) CTRAIN_E2E_IMAGE=$(IMAGE) $(BIN)/pytest tests/e2e -rs
