# Capacity lab for ML inference APIs. `make` (or `make help`) lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
MAKEFLAGS += --no-print-directory

VENV ?= .venv
PY := $(VENV)/bin/python
MODEL_DIR ?= model
PYTEST_ARGS ?=

.PHONY: help
help: ## Show the targets and their parameters
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: install
install: ## Create .venv and install Python and system packages (fast when nothing changed)
	@scripts/install.sh

$(MODEL_DIR)/metadata.json:
	@$(MAKE) install
	API_MODEL_DIR=$(MODEL_DIR) $(PY) -m api.train

.PHONY: train
train: install ## Train the model into model/ (deterministic; prints its metrics)
	API_MODEL_DIR=$(MODEL_DIR) $(PY) -m api.train

.PHONY: build
build: $(MODEL_DIR)/metadata.json ## Alias kept from the workshop: train only if model/ is missing

.PHONY: serve
serve: $(MODEL_DIR)/metadata.json ## Run one replica in the foreground on API_PORT (default 8001)
	API_MODEL_DIR=$(MODEL_DIR) $(PY) -m api

.PHONY: test
test: install ## Run every test, the slow integration ones included (what CI runs)
	$(PY) -m pytest $(PYTEST_ARGS)

.PHONY: test-fast
test-fast: install ## Run the tests that start no processes
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

.PHONY: lint
lint: install ## Check code style (ruff check and ruff format --check)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

.PHONY: format
format: install ## Reformat the code
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

.PHONY: clean
clean: ## Remove caches and the trained model (keeps .venv; see distclean)
	rm -rf $(MODEL_DIR) .pytest_cache .ruff_cache .hypothesis
	find . -name __pycache__ -not -path "./$(VENV)/*" -prune -exec rm -rf {} +

.PHONY: distclean
distclean: clean ## Also remove .venv
	rm -rf $(VENV)
