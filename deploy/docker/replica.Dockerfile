# The replica image: the official vLLM image (CUDA, vLLM, Ray) plus fleetgate,
# installed from the same pyproject as the router. It runs the Ray head (with
# `fleetgate controller`) and every Ray worker that hosts replica actors.
# Build from the repository root:
#   docker build -f deploy/docker/replica.Dockerfile -t fleetgate/replica:0.1.0 .
ARG VLLM_VERSION=v0.32.0
FROM vllm/vllm-openai:${VLLM_VERSION}

# Every node of a Ray cluster runs the same Ray; the Helm chart's
# rayCluster.rayVersion names this version to KubeRay.
ARG RAY_VERSION=2.60.0

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# KubeRay's health probes call wget inside the Ray containers.
RUN apt-get update \
 && apt-get install -y --no-install-recommends wget \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/fleetgate
COPY pyproject.toml setup.py README.md ./
COPY fleetgate ./fleetgate
COPY replicas ./replicas
COPY deploy/__init__.py deploy/*.yaml ./deploy/
COPY deploy/prometheus ./deploy/prometheus
COPY deploy/grafana ./deploy/grafana
# The image's own vLLM stays (no `gpu` extra, so pip does not replace it).
RUN python3 -m pip install . "ray[default]==${RAY_VERSION}"

# The vLLM image starts `vllm serve`; KubeRay and the chart give the commands.
ENTRYPOINT []
CMD ["fleetgate", "controller", "--config", "/etc/fleetgate/config.yaml", "--ray-address", "auto"]
