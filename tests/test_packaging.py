"""The built wheel: one ``fleetgate`` namespace, the shipped files inside, usable from any directory."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(REPO)], check=True, capture_output=True)
    (built,) = out.glob("fleetgate-*.whl")
    return built


def test_the_wheel_holds_one_namespace_and_the_shipped_files(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top_level == {"fleetgate"}
    for path in ("fleetgate/router/app.py", "fleetgate/replicas/server.py", "fleetgate/core/config.py",
                 "fleetgate/launcher/cli.py", "fleetgate/v1/replica_pb2.py", "fleetgate/deploy/local.yaml",
                 "fleetgate/deploy/local-sim.yaml", "fleetgate/deploy/prometheus/prometheus.yml",
                 "fleetgate/deploy/prometheus/rules/alerts.yml", "fleetgate/deploy/grafana/overview.json"):
        assert path in names
    assert not [n for n in names if n.startswith("fleetgate/tests/") or "/__pycache__/" in n]


def test_the_installed_wheel_runs_from_any_directory(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    probe = ("import fleetgate.router.app as app, fleetgate.core.config as c, fleetgate.launcher.local_prometheus as p;"
             "print(app.__file__); print(c.load_config(None).router.port); print(p.BASE_CONFIG)")
    env = {**os.environ, "PYTHONPATH": str(target)}
    result = subprocess.run([sys.executable, "-c", probe], cwd=elsewhere, env=env, check=True,
                            capture_output=True, text=True)
    router_file, port, prometheus_config = result.stdout.split()
    assert Path(router_file).is_relative_to(target)
    assert port == "8080"
    assert Path(prometheus_config) == target / "fleetgate" / "deploy" / "prometheus" / "prometheus.yml"
    help_text = subprocess.run([sys.executable, "-m", "fleetgate.launcher.cli", "--help"], cwd=elsewhere, env=env,
                               check=True, capture_output=True, text=True).stdout
    assert "fleetgate up" in help_text
