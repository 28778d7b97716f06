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
# `python -m lab` decides, once per command (lab/runtimes/select.py).
RUNTIME ?= auto
export RUNTIME
# The lab's one command line (lab/cli.py): every stack target below calls it once.
LAB := $(PY) -m lab
# `make scale` changes only what is given: REPLICAS, CPUS or MEMORY on the command line
# (or in the environment); the others keep their current values (`make scale CPUS=0.5`
# keeps the replica count). Decided here, in the top-level make: below it every exported
# variable counts as "from the environment".
given = $(filter-out file default,$(origin $(1)))
SCALE_ARGS = $(if $(call given,REPLICAS),--replicas '$(REPLICAS)') $(if $(call given,CPUS),--cpus '$(CPUS)') $(if $(call given,MEMORY),--memory '$(MEMORY)')

# Load generation (Locust). SHAPE: ramp | steps | spike | open (open uses ARRIVAL_RATE).
USERS ?= 50
SPAWN_RATE ?= 10
DURATION ?= 60s
SHAPE ?= ramp
ARRIVAL_RATE ?= 0
WORKERS ?= 1
LOAD_ARGS = --workers '$(WORKERS)' --users '$(USERS)' --spawn-rate '$(SPAWN_RATE)' \
	--shape '$(SHAPE)' --arrival-rate '$(ARRIVAL_RATE)'

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
	$(LAB) up

.PHONY: scale
scale: ## Change the running stack live: make scale [REPLICAS=n] [CPUS=..] [MEMORY=..]; what is not given stays
	$(LAB) scale $(SCALE_ARGS)

.PHONY: status
status: ## Every component and replica: pid, port, health, limits, CPU and memory
	@$(LAB) status

.PHONY: stats
stats: status ## Workshop alias of status: per-replica CPU and memory

.PHONY: watch
watch: ## Live terminal table of the SLO numbers per config and per replica, every scrape (Ctrl-C ends)
	@$(LAB) watch

.PHONY: trace
trace: ## Span tree of one sampled request (client, replica, model) with durations: make trace ID=<trace id of an exemplar>
	@test -n "$(ID)" || { echo "make trace needs ID=<32 hex digits>, e.g. an exemplar's trace_id (dashboards' Traces: links)" >&2; exit 2; }
	@$(LAB) trace '$(ID)'

.PHONY: logs
logs: ## Follow the logs of every component
	$(LAB) logs

.PHONY: down
down: ## Stop everything the stack started and remove its cgroups
	$(LAB) down

.PHONY: stop
stop: down ## Workshop alias of down

.PHONY: demo
demo: $(MODEL_DIR)/metadata.json ## First run: install, train, start 2 replicas, send predictions, show where to look
	$(LAB) demo

.PHONY: load
load: install ## Locust web UI on :8089 against Traefik (stats pushed to Prometheus); WORKERS=n processes
	$(LAB) load $(LOAD_ARGS)

.PHONY: load-headless
load-headless: install ## Headless run: USERS, SPAWN_RATE, DURATION, SHAPE, ARRIVAL_RATE; exits non-zero when the SLO is missed
	$(LAB) load $(LOAD_ARGS) --headless --run-time '$(DURATION)'

.PHONY: scale-load
scale-load: install ## Workshop verb: scale the running stack (make scale-load REPLICAS=n), then a headless load run
	$(LAB) scale $(SCALE_ARGS)
	$(LAB) load $(LOAD_ARGS) --headless --run-time '$(DURATION)'

# Experiments: FILE (the plan), CONFIG (for capacity), RUN (a results folder, for report).
FILE ?= experiments/default.yml
EXPERIMENTS = FILE=$(FILE) $(LAB)

.PHONY: experiment
experiment: $(MODEL_DIR)/metadata.json ## Run the matrix of FILE (default experiments/default.yml) and write results/<time>-<name>/report.md
	$(EXPERIMENTS) experiment

.PHONY: capacity
capacity: $(MODEL_DIR)/metadata.json ## Knee of one deployment (CONFIG=r2-c1.0-m1g), or the smallest deployment for TARGET_RPS=n predicted from RUN's knees, then measured
	@if [ -n "$(TARGET_RPS)" ]; then \
		$(EXPERIMENTS) capacity --target-rps '$(TARGET_RPS)' --results '$(or $(RUN),experiments/example)'; \
	elif [ -n "$(CONFIG)" ]; then \
		$(EXPERIMENTS) capacity --config '$(CONFIG)'; \
	else \
		echo "make capacity needs CONFIG=<label> (e.g. CONFIG=r2-c1.0-m1g) or TARGET_RPS=<requests/s>" >&2; exit 2; \
	fi

.PHONY: report
report: install ## Rebuild report.md and the plots of a stored run: make report RUN=results/<folder>
	@test -n "$(RUN)" || { echo "make report needs RUN=results/<folder>" >&2; exit 2; }
	$(LAB) report --run '$(RUN)'

.PHONY: load-workers
load-workers: install ## Locust workers on this host for a master on another: LOCUST_MASTER_HOST=ip WORKERS=n
	LOCUST_MASTER_HOST='$(LOCUST_MASTER_HOST)' WORKERS='$(WORKERS)' $(PY) -m lab.loadworkers

.PHONY: k8s-manifests
k8s-manifests: install ## Regenerate deploy/k8s's generated parts from the rules, dashboards, Traefik, compose and the matrix
	$(PY) -m lab.k8s

.PHONY: k8s-check
k8s-check: install ## Fail when deploy/k8s's generated parts drifted from their sources
	$(PY) -m lab.k8s --check

.PHONY: bench
bench: $(MODEL_DIR)/metadata.json ## Serving benchmark: ours vs a naive server vs FastAPI's ceiling, pinned, with wrk (bench/results/)
	$(PY) -m bench.serving

.PHONY: bench-locust
bench-locust: install ## Cost of the Locust listener: one Locust process with and without it (bench/results/)
	$(PY) -m bench.locust_listener

.PHONY: test
test: ## Run every test, the slow integration ones included (what CI runs); installs Chromium too
	@scripts/install.sh --test
	$(PY) -m pytest $(PYTEST_ARGS)

.PHONY: rule-tests
rule-tests: install ## Rewrite prometheus/tests from tests/static/rule_cadence.py (2 s and 5 s cadence) and run promtool on them
	$(PY) -m tests.static.rule_cadence
	promtool test rules prometheus/tests/*.yml

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

.PHONY: clean-all
clean-all: down clean ## Workshop verb: stop the stack (down), then clean

.PHONY: distclean
distclean: clean ## Also remove .venv
	rm -rf $(VENV)
