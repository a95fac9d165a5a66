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

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[sandbox,test]'
	@touch $@

.PHONY: install
install: $(STAMP) ## Create .venv with ctrain and its pinned dependencies.

.PHONY: binaries
binaries: $(STAMP) ## Build (once) or find the Kubernetes, etcd and helm binaries.
	$(BIN)/ctrain dev binaries

.PHONY: lint
lint: $(STAMP) ## ruff (lint + format check) and mypy.
	$(BIN)/ruff check operator tests benchmarks
	$(BIN)/ruff format --check operator tests benchmarks
	$(BIN)/mypy

.PHONY: format
format: $(STAMP) ## Format the code with ruff.
	$(BIN)/ruff check --fix operator tests benchmarks
	$(BIN)/ruff format operator tests benchmarks

.PHONY: generate
generate: $(STAMP) ## Regenerate the CRDs (crds/, package and chart copies) from the API types.
	$(BIN)/ctrain generate

.PHONY: test
test: lint binaries ## Everything CI runs: lint, unit and integration tests (starts a sandbox).
	$(BIN)/pytest tests/unit tests/integration

.PHONY: test-unit
test-unit: $(STAMP) ## Unit tests only (no cluster).
	$(BIN)/pytest tests/unit

.PHONY: test-integration
test-integration: binaries ## Integration tests against the local sandbox.
	$(BIN)/pytest tests/integration

.PHONY: demo
demo: binaries ## The whole story in the local sandbox: train, serve, retrain, promote.
	$(BIN)/python examples/demo.py

.PHONY: demo-down
demo-down: $(STAMP) ## Stop the demo's sandbox.
	$(BIN)/ctrain dev down

.PHONY: up
up: binaries ## Start the local sandbox (control plane, node agent, S3, operator).
	$(BIN)/ctrain dev up

.PHONY: down
down: $(STAMP) ## Stop the local sandbox.
	$(BIN)/ctrain dev down
