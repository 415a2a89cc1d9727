"""``fleetgate up`` with sim replicas: it serves the models, a local Prometheus on the port asked for scrapes
the router and every replica, and SIGTERM leaves no process behind; a killed redis-server (with its data) or
router is restarted and stderr says so, and a child dying past its restart budget is given up."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest
import redis
import yaml

from conftest import REPO, free_port, wait_for_port
from fleetgate.core.local_processes import RestartsExhausted, SupervisedProcess
from fleetgate.core.registry import REPLICA_KEY_PREFIX, ReplicaRecord


@pytest.fixture()
def cluster_config(tmp_path: Path) -> tuple[Path, int, int]:
    redis_port, router_port = free_port(), free_port()
    config = {
        "redis": {"url": None, "port": redis_port, "data_dir": str(tmp_path / "redis")},
        "router": {"host": "127.0.0.1", "port": router_port, "auth": False},
        "replica": {"base_port": 0, "metrics_base_port": 0, "heartbeat_seconds": 0.5, "registry_ttl_seconds": 2.0},
        "models": [
            {"name": "sim", "engine": "sim", "replicas": 2, "sim": {"ttft_ms": 5, "itl_ms": 2, "output_tokens": 4}}
        ],
    }
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, redis_port, router_port


def descendants(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


def scrape_targets(prometheus_url: str) -> dict[str, list[dict]]:
    """Prometheus' active targets by job."""
    targets = httpx.get(f"{prometheus_url}/api/v1/targets", params={"state": "active"}, timeout=10).json()
    by_job: dict[str, list[dict]] = {}
    for target in targets["data"]["activeTargets"]:
        by_job.setdefault(target["labels"]["job"], []).append(target)
    return by_job


def wait_for_targets_up(prometheus_url: str, replicas: int, timeout: float = 45.0) -> dict[str, list[dict]]:
    """The targets once the router and ``replicas`` replicas have been scraped successfully (or at the timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        by_job = scrape_targets(prometheus_url)
        healths = [t["health"] for job in ("fleetgate-router", "fleetgate-replica") for t in by_job.get(job, [])]
        if len(healths) == 1 + replicas and set(healths) == {"up"} or time.monotonic() > deadline:
            return by_job
        time.sleep(0.5)


def test_up_serves_the_configured_models_with_prometheus_and_stops_cleanly(cluster_config, tmp_path):
    config_path, redis_port, router_port = cluster_config
    prometheus_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETGATE_")}
    command = [sys.executable, "-m", "fleetgate.launcher.cli", "up", "--config", str(config_path),
               "--with-prometheus", "--prometheus-port", str(prometheus_port)]
    with open(tmp_path / "up.log", "wb") as log:
        up = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    children: list[psutil.Process] = []
    try:
        wait_for_port(router_port, timeout=120)
        client = redis.Redis(port=redis_port)
        deadline = time.monotonic() + 30
        while len(client.keys(REPLICA_KEY_PREFIX + "*")) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        records = [ReplicaRecord.model_validate_json(raw) for raw in client.mget(client.keys(REPLICA_KEY_PREFIX + "*"))]
        assert len(records) == 2
        assert (tmp_path / "redis" / "appendonlydir").is_dir()  # AOF persistence on
        models = httpx.get(f"http://127.0.0.1:{router_port}/v1/models", timeout=10).json()
        assert [m["id"] for m in models["data"]] == ["sim"]

        prometheus_url = f"http://127.0.0.1:{prometheus_port}"
        wait_for_port(prometheus_port, timeout=60)
        by_job = wait_for_targets_up(prometheus_url, replicas=2)
        router_targets = [(t["labels"]["instance"], t["health"]) for t in by_job["fleetgate-router"]]
        assert router_targets == [(f"127.0.0.1:{router_port}", "up")]
        replica_targets = {(t["labels"]["replica"], t["scrapeUrl"], t["health"]) for t in by_job["fleetgate-replica"]}
        assert replica_targets == {(r.replica_id, r.metrics_url, "up") for r in records}
        assert f"prometheus: {prometheus_url}" in (tmp_path / "up.log").read_text()
        children = descendants(up.pid)
        assert children
        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=90) == 0
        gone, alive = psutil.wait_procs(children, timeout=20)
        assert not alive, f"left behind: {[p.info if hasattr(p, 'info') else p for p in alive]}"
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
        for child in children:
            if child.is_running():
                child.kill()
        print((tmp_path / "up.log").read_text()[-3000:])


# -- supervision -------------------------------------------------------------------------------------------

def child_named(up_pid: int, marker: str) -> psutil.Process:
    """The child of ``fleetgate up`` whose command line contains ``marker``."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for child in descendants(up_pid):
            with contextlib.suppress(psutil.Error):
                if marker in " ".join(child.cmdline()) and child.status() != psutil.STATUS_ZOMBIE:
                    return child
        time.sleep(0.1)
    raise TimeoutError(f"no child of fleetgate up runs {marker!r}")


def wait_for_text(path: Path, text: str, timeout: float = 30.0) -> float:
    """Seconds until ``text`` appears in the file at ``path``."""
    start = time.monotonic()
    while text not in path.read_text(errors="replace"):
        assert time.monotonic() - start < timeout, f"{text!r} not in {path} after {timeout}s"
        time.sleep(0.05)
    return time.monotonic() - start


def test_up_restarts_a_killed_redis_with_its_data_and_a_killed_router(cluster_config, tmp_path, tmp_path_factory):
    """SIGKILL redis-server: stderr says it restarts it, it serves again on its port with every key written
    before (AOF); SIGKILL the router: the same. The recovery times are written to supervision_figures.json."""
    config_path, redis_port, router_port = cluster_config
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETGATE_")}
    log_path = tmp_path / "up.log"
    with open(log_path, "wb") as log:
        up = subprocess.Popen([sys.executable, "-m", "fleetgate.launcher.cli", "up", "--config", str(config_path)],
                              cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    figures: dict[str, float] = {}
    try:
        wait_for_text(log_path, "fleetgate is up", timeout=120)
        client = redis.Redis(port=redis_port)
        stored = {f"fault-test-{i}": f"value-{i}" for i in range(8)}
        client.mset(stored)

        child_named(up.pid, "redis-server").kill()
        figures["redis_back_seconds"] = wait_for_text(log_path, "fleetgate: redis-server is back")
        assert "fleetgate: redis-server exited with code -9; restarting it" in log_path.read_text()
        assert [v.decode() for v in client.mget(list(stored))] == list(stored.values())

        child_named(up.pid, "fleetgate.launcher.cli router").kill()
        figures["router_back_seconds"] = wait_for_text(log_path, "fleetgate: router is back", timeout=60)
        models = httpx.get(f"http://127.0.0.1:{router_port}/v1/models", timeout=10).json()
        assert [m["id"] for m in models["data"]] == ["sim"]
        assert up.poll() is None
        children = descendants(up.pid)
        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=90) == 0
        gone, alive = psutil.wait_procs(children, timeout=20)
        assert not alive, f"left behind: {alive}"  # the restarted redis-server and router too
    finally:
        # Redis and the router run in sessions of their own: killing up's process group misses them.
        leftovers = descendants(up.pid) if up.poll() is None else []
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
        for child in leftovers:
            with contextlib.suppress(psutil.Error):
                child.kill()
        print(log_path.read_text()[-3000:])
    out = tmp_path_factory.getbasetemp() / "supervision_figures.json"
    out.write_text(json.dumps(figures))
    print(f"supervision figures ({out}): {figures}")


def test_a_process_dying_past_its_restart_budget_is_given_up(tmp_path: Path) -> None:
    said: list[str] = []
    launched: list[subprocess.Popen[bytes]] = []

    def launch() -> subprocess.Popen[bytes]:
        launched.append(subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"]))
        return launched[-1]

    child = SupervisedProcess("flaky", launch, lambda process: process.wait(), max_restarts=2,
                              window_seconds=60, announce=said.append)
    assert [child.check(), child.check()] == [True, True]
    with pytest.raises(RestartsExhausted, match="flaky exited with code 3 after 2 restarts in 60s; giving up"):
        child.check()
    assert len(launched) == 3
    assert said[0] == "fleetgate: flaky exited with code 3; restarting it (restart 1 of at most 2 in 60s)"


def test_fleetgate_up_stops_with_a_reason_when_a_child_cannot_be_kept_running(capsys) -> None:
    from fleetgate.launcher.local_cluster import supervise

    child = SupervisedProcess("router", lambda: subprocess.Popen([sys.executable, "-c", "raise SystemExit(1)"]),
                              lambda process: process.wait(), max_restarts=0, window_seconds=60)
    assert supervise([child], threading.Event()) is False
    assert ("fleetgate: router exited with code 1 after 0 restarts in 60s; giving up; stopping the cluster"
            in capsys.readouterr().err)
