# The router image: slim Python and the fleetgate distribution, without vLLM
# (vLLM is only the `gpu` extra; the router never loads a model).
# Build from the repository root:
#   docker build -f deploy/docker/router.Dockerfile -t fleetgate/router:0.1.0 .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/fleetgate
# The router needs only the core, the launcher, the router and the shipped files:
# no Ray, no replicas/, no loadtest/ (setup.py leaves out folders that are not there).
COPY pyproject.toml setup.py README.md ./
COPY fleetgate ./fleetgate
COPY router ./router
COPY deploy/__init__.py deploy/*.yaml ./deploy/
COPY deploy/prometheus ./deploy/prometheus
COPY deploy/grafana ./deploy/grafana
RUN pip install . \
 && useradd --uid 10001 --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin fleetgate

USER 10001
EXPOSE 8080
ENTRYPOINT ["fleetgate"]
CMD ["router", "--config", "/etc/fleetgate/config.yaml"]
