# Capacity lab for ML inference APIs. `make` (or `make help`) lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
MAKEFLAGS += --no-print-directory

VENV ?= .venv
PY := $(VENV)/bin/python
# Where the model lives; API_MODEL_DIR in the environment is honoured too.
ifeq ($(origin MODEL_DIR),undefined)
MODEL_DIR := $(or $(API_MODEL_DIR),model)
endif
export API_MODEL_DIR := $(abspath $(MODEL_DIR))
PYTEST_ARGS ?=

# The deployment: replicas, and CPU and memory per replica in Docker's syntax.
REPLICAS ?= 2
CPUS ?= 1
MEMORY ?= 1g
export REPLICAS CPUS MEMORY
# auto: docker when `docker info` answers, else the native runtime (processes on 127.0.0.1).
RUNTIME ?= auto
RESOLVED_RUNTIME = $(if $(filter auto,$(RUNTIME)),$(shell docker info >/dev/null 2>&1 && echo docker || echo native),$(RUNTIME))
# `make scale REPLICAS=4` keeps the current limits; CPUS or MEMORY given on the command
# line (or in the environment) change them, replica by replica. Decided here, in the
# top-level make: below it every exported variable counts as "from the environment".
SCALE_LIMITS = $(if $(filter-out file default,$(origin CPUS)),--cpus $(CPUS)) $(if $(filter-out file default,$(origin MEMORY)),--memory $(MEMORY))
NATIVE := $(PY) -m monitoring.native

# Load generation (Locust). SHAPE: ramp | steps | spike | open (open uses ARRIVAL_RATE).
USERS ?= 50
SPAWN_RATE ?= 10
DURATION ?= 60s
SHAPE ?= ramp
ARRIVAL_RATE ?= 0
WORKERS ?= 1
LOCUST = LOCUST_SHAPE=$(SHAPE) LOCUST_ARRIVAL_RATE=$(ARRIVAL_RATE) \
	LOCUST_CONFIG_LABEL=$$($(NATIVE) label) \
	LOCUST_PUSHGATEWAY=http://127.0.0.1:$${LAB_PUSHGATEWAY_PORT:-9091} \
	LOCUST_SCRAPE_INTERVAL=$${LAB_SCRAPE_INTERVAL_SECONDS:-2} \
	$(VENV)/bin/locust --config locust/locust.conf --host http://127.0.0.1:$${LAB_WEB_PORT:-8000} \
	$(if $(filter-out 1,$(WORKERS)),--processes $(WORKERS))

.PHONY: help
help: ## Show the targets and their parameters
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: install
install: ## Create .venv and install Python and system packages (fast when nothing changed)
	@scripts/install.sh

$(MODEL_DIR)/metadata.json:
	@$(MAKE) install
	$(PY) -m api.train

.PHONY: train
train: install ## Train the model into model/ (deterministic; prints its metrics)
	$(PY) -m api.train

.PHONY: build
build: $(MODEL_DIR)/metadata.json ## Alias kept from the workshop: train only if model/ is missing

.PHONY: serve
serve: $(MODEL_DIR)/metadata.json ## Run one replica in the foreground on API_PORT (default 8001)
	$(PY) -m api

.PHONY: up
up: $(MODEL_DIR)/metadata.json ## Start the stack: Traefik :8000/:8080, Prometheus :9090, Pushgateway :9091, REPLICAS replicas
	@$(MAKE) _up-$(RESOLVED_RUNTIME)

.PHONY: scale
scale: ## Change the running stack live: make scale REPLICAS=n [CPUS=..] [MEMORY=..]
	@$(MAKE) _scale-$(RESOLVED_RUNTIME) SCALE_LIMITS='$(SCALE_LIMITS)'

.PHONY: status
status: ## Every component and replica: pid, port, health, limits, CPU and memory
	@$(MAKE) _status-$(RESOLVED_RUNTIME)

.PHONY: stats
stats: status ## Workshop alias of status: per-replica CPU and memory

.PHONY: logs
logs: ## Follow the logs of every component
	@$(MAKE) _logs-$(RESOLVED_RUNTIME)

.PHONY: down
down: ## Stop everything the stack started and remove its cgroups
	@$(MAKE) _down-$(RESOLVED_RUNTIME)

.PHONY: stop
stop: down ## Workshop alias of down

.PHONY: demo
demo: $(MODEL_DIR)/metadata.json ## First run: install, train, start 2 replicas, send predictions, show where to look
	@$(MAKE) _demo-$(RESOLVED_RUNTIME)

.PHONY: load
load: install ## Locust web UI on :8089 against Traefik (stats pushed to Prometheus); WORKERS=n processes
	@$(MAKE) _load-$(RESOLVED_RUNTIME)

.PHONY: load-headless
load-headless: install ## Headless run: USERS, SPAWN_RATE, DURATION, SHAPE, ARRIVAL_RATE; exits non-zero when the SLO is missed
	@$(MAKE) _load-headless-$(RESOLVED_RUNTIME)

.PHONY: _load-native _load-headless-native
_load-native:
	$(LOCUST) --web-host 127.0.0.1 --web-port 8089 --users $(USERS) --spawn-rate $(SPAWN_RATE)
_load-headless-native:
	$(LOCUST) --headless --users $(USERS) --spawn-rate $(SPAWN_RATE) --run-time $(DURATION)

.PHONY: _up-native _scale-native _status-native _logs-native _down-native _demo-native
_up-native:
	$(NATIVE) up
_scale-native:
	$(NATIVE) scale --replicas $(REPLICAS) $(SCALE_LIMITS)
_status-native:
	@$(NATIVE) status
_logs-native:
	tail -n 20 -F .run/native/logs/*.log
_down-native:
	$(NATIVE) down
_demo-native:
	$(NATIVE) demo

# Experiments: FILE (the plan), CONFIG (for capacity), RUN (a results folder, for report).
FILE ?= experiments/default.yml
EXPERIMENTS = FILE=$(FILE) RUNTIME=$(RUNTIME) $(PY) -m monitoring.experiments

.PHONY: experiment
experiment: $(MODEL_DIR)/metadata.json ## Run the matrix of FILE (default experiments/default.yml) and write results/<time>-<name>/report.md
	$(EXPERIMENTS) run

.PHONY: capacity
capacity: $(MODEL_DIR)/metadata.json ## Maximum sustainable RPS of one deployment: make capacity CONFIG=r2-c1.0-m1g [FILE=..]
	@test -n "$(CONFIG)" || { echo "make capacity needs CONFIG=<label>, e.g. CONFIG=r2-c1.0-m1g" >&2; exit 2; }
	$(EXPERIMENTS) capacity --config $(CONFIG)

.PHONY: report
report: install ## Rebuild report.md and the plots of a stored run: make report RUN=results/<folder>
	@test -n "$(RUN)" || { echo "make report needs RUN=results/<folder>" >&2; exit 2; }
	$(PY) -m monitoring.experiments report --run $(RUN)

.PHONY: bench
bench: $(MODEL_DIR)/metadata.json ## Serving benchmark: ours vs a naive server vs FastAPI's ceiling, pinned, with wrk (bench/results/)
	$(PY) -m bench.serving

.PHONY: bench-locust
bench-locust: install ## Cost of the Locust listener: one Locust process with and without it (bench/results/)
	$(PY) -m bench.locust_listener

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

# ------------------------------------------------------------------- Docker runtime
# RUNTIME=docker (or auto with a Docker engine): the same verbs on docker-compose.yaml,
# driven by monitoring/docker_runtime (docs/README-docker.md). Compose reads .env.
DOCKER_LAB := $(PY) -m monitoring.docker_runtime
DOCKER_LOAD = LOCUST_SHAPE=$(SHAPE) LOCUST_ARRIVAL_RATE=$(ARRIVAL_RATE) \
	$(DOCKER_LAB) load --workers $(WORKERS) --users $(USERS) --spawn-rate $(SPAWN_RATE)

.PHONY: _up-docker _scale-docker _status-docker _logs-docker _down-docker _demo-docker
_up-docker:
	$(DOCKER_LAB) up
_scale-docker:
	$(DOCKER_LAB) scale --replicas $(REPLICAS) $(SCALE_LIMITS)
# Services, then each replica's limits, health, CPU and memory (docker stats): `make stats`.
_status-docker:
	@$(DOCKER_LAB) status
_logs-docker:
	$(DOCKER_LAB) logs
_down-docker:
	$(DOCKER_LAB) down
_demo-docker:
	$(DOCKER_LAB) demo

.PHONY: _load-docker _load-headless-docker
_load-docker:
	$(DOCKER_LOAD)
_load-headless-docker:
	$(DOCKER_LOAD) --headless --run-time $(DURATION)
