"""Package layout: one ``fleetgate.*`` namespace over the repository's top-level folders.

The metadata lives in pyproject.toml; this file only maps import names onto
folders, which pyproject's static tables cannot do for nested packages without
listing every subpackage by hand:

    fleetgate            fleetgate/   the shared core (fleetgate.core, fleetgate.v1) and the launcher
    fleetgate.router     router/
    fleetgate.replicas   replicas/
    fleetgate.toolbox    toolbox/     server-side tool execution (sandboxed python and bash, web search, remote MCP)
    fleetgate.loadtest   loadtest/
    fleetgate.deploy     deploy/      data only: the shipped configs, Prometheus files, dashboards

A folder that is not there is left out, so the router's image is built from
fleetgate/, router/ and deploy/ alone. Why one namespace: the README ("Layout").
"""

from pathlib import Path

from setuptools import find_packages, setup

ROOTS = {
    "fleetgate": "fleetgate",
    "fleetgate.router": "router",
    "fleetgate.replicas": "replicas",
    "fleetgate.toolbox": "toolbox",
    "fleetgate.loadtest": "loadtest",
    "fleetgate.deploy": "deploy",
}

packages: list[str] = []
package_dir: dict[str, str] = {}
for name, folder in ROOTS.items():
    if not Path(folder).is_dir():
        continue
    package_dir[name] = folder
    packages += [name, *(f"{name}.{sub}" for sub in find_packages(folder))]

setup(
    packages=packages,
    package_dir=package_dir,
    package_data={
        "fleetgate.deploy": ["*.yaml", "prometheus/*.yml", "prometheus/rules/*.yml", "grafana/*.json"],
        "fleetgate.v1": ["*.pyi"],
        "fleetgate": ["py.typed"],
    },
)
