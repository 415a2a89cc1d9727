# The toolbox image: `fleetgate toolbox`, which runs the routers' server-side tool calls: python and
# bash in bubblewrap sandboxes, web search and remote MCP servers (the `toolbox` extra: the mcp SDK).
# Like the router image (slim Python, no vLLM) plus what the sandboxes need from Debian:
#   bubblewrap   the sandbox (tools.sandbox.bwrap)
#   util-linux   setpriv and prlimit: each sandbox runs as a uid of its own, under its limits
#   python3      /usr/bin/python3, the python tool's interpreter (tools.sandbox.python; a sandbox sees
#                only /usr, read-only, so it is Debian's interpreter, not the image's /usr/local one)
# It runs as root: it drops every sandbox to its own uid (tools.sandbox.uid_base ..). What the pod
# must allow for that (user namespace or privileged) is the Helm chart's toolbox.sandboxAccess.
# Build from the repository root:
#   docker build -f deploy/docker/toolbox.Dockerfile -t fleetgate/toolbox:0.1.0 .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends bubblewrap util-linux python3 \
 && rm -rf /var/lib/apt/lists/* \
 && command -v bwrap setpriv prlimit \
 && /usr/bin/python3 -c "import json, ast, struct"

WORKDIR /opt/fleetgate
# The core, the launcher, the toolbox and the shipped files; no Ray, no router/, replicas/ or loadtest/.
COPY pyproject.toml setup.py README.md ./
COPY fleetgate ./fleetgate
COPY toolbox ./toolbox
COPY deploy/__init__.py deploy/*.yaml ./deploy/
COPY deploy/prometheus ./deploy/prometheus
COPY deploy/grafana ./deploy/grafana
# /var/lib/fleetgate/toolbox: where the chart mounts the sessions' working directories (toolbox.workRoot,
# tools.sandbox.work_root); each parent must be searchable by the sandbox uids.
RUN pip install ".[toolbox]" \
 && install -d -m 0711 /var/lib/fleetgate /var/lib/fleetgate/toolbox

EXPOSE 50300
ENTRYPOINT ["fleetgate"]
CMD ["toolbox", "--config", "/etc/fleetgate/config.yaml"]
