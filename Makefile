# Agent platform on Ray Serve. `make help` lists the targets.
# Everything installs itself: uv is found or bootstrapped (scripts/bootstrap-uv.sh), then `uv sync` builds
# .venv from uv.lock. OFFLINE=1 runs the stack on the scripted model and the bundled sample upstream server.
# No comment may follow a value on its line: GNU make keeps the spaces before it in the value.

SHELL := /bin/bash
VENV := .venv
RUN_DIR := .run
PORT ?= 8000
OFFLINE ?=
# TRACES=1: every app of `make run` / `make run-multi` exports its traces to the local viewer (`make traces`).
TRACES ?=
TRACES_PORT ?= 6006
# Ray's Prometheus endpoint (Serve's metrics and the platform's agent_*) of `make run` and `make up`.
METRICS_PORT ?= 8080
PYTEST_ARGS ?=
# The config of `make up` / `make deploy` (default serve_multi_config.yaml) or `make anyscale-deploy`.
CONFIG ?=
# The browser test (tests/ui/test_browser.py) drives Debian's chromium.
CHROMIUM ?= /usr/bin/chromium
export CHROMIUM

# UV=/path/to/uv uses that uv; otherwise scripts/bootstrap-uv.sh prints the path of one, installing it
# first where there is none (PYTHON=... names the interpreter it installs with). `uv run` sets UV itself.
UV ?=
UV_RUN = uv="$(if $(UV),$(UV),$$(bash scripts/bootstrap-uv.sh))" && "$$uv"

# Extras of .venv, recorded in .venv/.extras by every sync: `uv sync` is exact, so a later sync without
# `--extra gpu` (make install, make run after a lock change) would remove what `make install-gpu` added.
# EXTRAS defaults to the recorded ones; `make install EXTRAS=` drops them.
EXTRAS_FILE := $(VENV)/.extras
INSTALLED_EXTRAS := $(sort $(shell cat $(EXTRAS_FILE) 2>/dev/null))
EXTRAS ?= $(INSTALLED_EXTRAS)
differ = $(strip $(filter-out $(2),$(1)) $(filter-out $(1),$(2)))

.DEFAULT_GOAL := help
.PHONY: help install install-gpu run run-multi traces up deploy status down test test-unit fuzz lint format bench soak docs anyscale-requirements anyscale-deploy clean FORCE

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-22s %s\n", $$1, $$2}'

# Re-synced when the lock changes, or when the wanted extras are not the installed ones.
$(VENV)/.synced: pyproject.toml uv.lock $(if $(call differ,$(sort $(EXTRAS)),$(INSTALLED_EXTRAS)),FORCE)
	$(UV_RUN) sync $(strip --frozen $(addprefix --extra ,$(sort $(EXTRAS))))
	@echo "$(sort $(EXTRAS))" > $(EXTRAS_FILE)
	@touch $@

FORCE:

install: $(VENV)/.synced ## Create .venv with every dependency (CPU only, plus extras installed before)

install-gpu: ## Add the GPU extra (ray[llm], vLLM) for the vllm LLM backend; later syncs keep it
	@$(MAKE) --no-print-directory install EXTRAS="$(sort $(EXTRAS) gpu)"

# Commands run from .venv/bin, not `uv run`: under `uv run`, Ray ships the working dir to its workers and
# builds them a second venv. `serve run` starts a local Ray cluster (GCS on a free port, so a local Redis
# on 6379 is no problem); platform_core.serve_run starts it first with Ray's metrics on METRICS_PORT.
BIN := $(VENV)/bin
define serve_run
	@mkdir -p $(RUN_DIR)
	$(BIN)/python -m platform_core.serve_config $(1) --port $(PORT) $(if $(OFFLINE),--offline) -o $(RUN_DIR)/$(notdir $(1))
	@echo "Serving $(1) on http://127.0.0.1:$(PORT) $(if $(OFFLINE),(OFFLINE: scripted model + sample upstream data))"
	@echo "Web UI: http://127.0.0.1:$(PORT)/ui/  (ready once 'Deployed app ui' appears below)"
	@echo "Metrics: http://127.0.0.1:$(METRICS_PORT)/metrics  (Prometheus; METRICS_PORT sets the port)"
	$(if $(TRACES),@echo "Traces: exported to http://127.0.0.1:$(TRACES_PORT) (start the viewer with make traces)")
	$(if $(TRACES),OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$(TRACES_PORT)) $(BIN)/python -m platform_core.serve_run $(RUN_DIR)/$(notdir $(1)) --metrics-port $(METRICS_PORT)
endef

run: install ## Start the single-agent stack (serve_config.yaml); OFFLINE=1 for offline mode
	$(call serve_run,serve_config.yaml)

run-multi: install ## Start all services (serve_multi_config.yaml); OFFLINE=1 for offline mode
	$(call serve_run,serve_multi_config.yaml)

# Phoenix runs from uv's tool cache, in an environment of its own: the platform's .venv stays lean and
# its pins never meet Phoenix's. The first start downloads it (about 1 min).
traces: ## Local trace viewer (Arize Phoenix): UI and OTLP/HTTP on :6006 (TRACES_PORT); `make run TRACES=1` exports to it
	export PHOENIX_PORT=$(TRACES_PORT) PHOENIX_HOST=127.0.0.1; $(UV_RUN) tool run --python 3.11 --from arize-phoenix phoenix serve

# A long-lived local cluster changed in place (platform_core/cluster.py): the production loop on a laptop.
CLUSTER = $(BIN)/python -m platform_core.cluster
LOCAL_CONFIG = $(or $(CONFIG),serve_multi_config.yaml)

up: install ## Start a background Ray head and serve deploy CONFIG (default serve_multi_config.yaml); OFFLINE=1
	$(CLUSTER) up --config $(LOCAL_CONFIG) --port $(PORT) --metrics-port $(METRICS_PORT) $(if $(OFFLINE),--offline)

deploy: install ## Apply CONFIG to the running cluster in place (a roll-out: the apps keep serving); OFFLINE=1
	$(CLUSTER) deploy --config $(LOCAL_CONFIG) $(if $(OFFLINE),--offline)

status: install ## Each app of the running cluster, its status and its replicas by state
	@$(CLUSTER) status

down: install ## Shut Serve down and stop the cluster that `make up` started
	$(CLUSTER) down

test: install ## Run every test (unit and real-stack integration); PYTEST_ARGS=... to narrow
	$(BIN)/pytest $(PYTEST_ARGS)

test-unit: install ## Run the tests that need no Ray cluster
	$(BIN)/pytest -m "not integration" $(PYTEST_ARGS)

# The fuzz tests run in `make test` with a short budget; FUZZ_EXAMPLES sets examples per test here.
FUZZ_EXAMPLES ?= 2000
FUZZ_TESTS := tests/agent_runtime/chat/test_fuzz.py tests/llm/test_fuzz.py tests/agent_runtime/a2a/test_fuzz.py tests/mcp_servers/test_fuzz.py

fuzz: install ## Fuzz every HTTP surface in process, long (FUZZ_EXAMPLES=2000 per test, random seeds)
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest $(FUZZ_TESTS) --hypothesis-show-statistics $(PYTEST_ARGS)

lint: install ## ruff (lint, docstrings, complexity), format check and strict mypy: zero findings
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install ## Apply ruff formatting and safe fixes
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# BENCH_ARGS: e.g. --base-url http://127.0.0.1:8000 (a running stack), --levels 1,10, --code-dir DIR.
BENCH_ARGS ?=

bench: install ## Own offline stack on a free port: 1/10/50 concurrent chats, MCP call ratio -> bench/results.json
	$(BIN)/python -m bench.run $(BENCH_ARGS)

# SOAK_ARGS: e.g. --minutes 1 (a short one), --streams 10, --base-url URL --root-pid PID (a running stack).
SOAK_ARGS ?=

soak: install ## Own offline stack: 20 chats held 10 min; errors, p50/p99 per minute, replica RSS/fds -> bench/soak.json
	$(BIN)/python -m bench.soak $(SOAK_ARGS)

docs: install ## Regenerate docs/configuration.md from the settings and builder args models
	$(BIN)/python -m platform_core.config_reference && $(BIN)/python -m protocols.reference

anyscale-requirements: install ## Write requirements.lock.txt (from uv.lock) for the Anyscale configs
	$(UV_RUN) export --frozen --no-dev --no-hashes --no-emit-project --no-header -o requirements.lock.txt

anyscale-deploy: anyscale-requirements ## Deploy CONFIG (default anyscale_service_config.yaml) with the anyscale CLI
	$(BIN)/anyscale service deploy -f $(or $(CONFIG),anyscale_service_config.yaml)

clean: ## Remove the venv, caches and run files
	rm -rf $(VENV) $(RUN_DIR) .pytest_cache .ruff_cache test-artifacts
