"""Run ``fleetgate router`` as a real subprocess for tests, and pytest fixtures built on it.

    with RouterProcess(ROUTER_CONFIG, redis_url) as router:
        client = router.openai()          # the official SDK, pointed at the router

Fixtures (import them into a test module: ``from router_process import ...``):
``router_factory`` (function scope: ``start(config=..., env=...)``, stopped
afterwards), ``router_cluster`` (session: the always-on sim replicas of
``tests/configs/router-sim.yaml`` and one router without auth), ``sim_router``
(that router).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from fleetgate.core.local_processes import free_port, log_tail, terminate, wait_until
from replica_process import ReplicaProcess

REPO = Path(__file__).resolve().parent.parent
ROUTER_CONFIG = REPO / "tests" / "configs" / "router-sim.yaml"
# Sim models of ROUTER_CONFIG that the session keeps running (one replica each).
ALWAYS_ON_MODELS = ("rt-sim", "rt-echo", "rt-reasoning", "rt-vision")


class RouterProcess:
    """One ``fleetgate router`` process on a free port, with its Redis from ``redis_url``."""

    def __init__(
        self,
        config_path: str | os.PathLike[str],
        redis_url: str,
        *,
        env: dict[str, str] | None = None,
        log_path: str | os.PathLike[str] | None = None,
    ) -> None:
        self.config_path = Path(config_path)
        self.redis_url = redis_url
        self.env = env or {}
        self.port = free_port()
        self.log_path = (
            Path(log_path) if log_path else Path(tempfile.gettempdir()) / f"fleetgate-router-{uuid.uuid4().hex[:6]}.log"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> RouterProcess:
        env = {**os.environ, **self.env, "FLEETGATE_REDIS__URL": self.redis_url, "PYTHONUNBUFFERED": "1"}
        command = [sys.executable, "-m", "fleetgate.launcher.cli", "router", "--config", str(self.config_path),
                   "--port", str(self.port)]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        wait_until(lambda: httpx.get(f"{self.base_url}/health", timeout=1.0).status_code == 200, what="router",
                   timeout=timeout, process=self.proc, log_path=self.log_path, tolerate=(httpx.HTTPError,))
        return self

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc, what="router", timeout=20)

    def __enter__(self) -> RouterProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.log_path, lines)

    # -- clients -------------------------------------------------------------------

    def openai(self, api_key: str = "unused") -> openai.OpenAI:
        """The official SDK against this router, without client-side retries (tests see every status)."""
        return openai.OpenAI(base_url=f"{self.base_url}/v1", api_key=api_key, max_retries=0, timeout=60.0)

    def metric(self, name: str, **labels: str) -> float:
        """The value of one sample of this router's ``/metrics`` (0 when absent)."""
        from prometheus_client.parser import text_string_to_metric_families

        text = httpx.get(f"{self.base_url}/metrics", timeout=5.0).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    return sample.value
        return 0.0

    def wait_for_replicas(self, model: str, count: int, timeout: float = 30.0) -> None:
        """Until this router sees ``count`` healthy replicas of ``model``."""
        deadline = time.monotonic() + timeout
        seen = -1.0
        while time.monotonic() < deadline:
            seen = self.metric("fleetgate_healthy_replicas", model=model)
            if seen == count:
                return
            time.sleep(0.1)
        raise TimeoutError(f"router sees {seen} healthy replicas of {model}, expected {count}")


@pytest.fixture()
def router_factory(redis_server, tmp_path: Path) -> Iterator:
    """``start(config=ROUTER_CONFIG, env=None) -> RouterProcess``; every router started is stopped afterwards."""
    started: list[RouterProcess] = []

    def start(config: Path = ROUTER_CONFIG, env: dict[str, str] | None = None) -> RouterProcess:
        router = RouterProcess(config, redis_server.url, env=env, log_path=tmp_path / f"router-{len(started)}.log")
        started.append(router)
        return router.start()

    yield start
    for router in started:
        router.stop()


# Test modules import the fixtures below, so pytest may instantiate the session
# fixture once per importing module: they all share the first cluster started.
_CLUSTERS: dict[str, RouterProcess] = {}


@pytest.fixture(scope="session")
def router_cluster(redis_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RouterProcess]:
    """One replica of each ALWAYS_ON_MODELS model and one router (auth off), for the whole session."""
    shared = _CLUSTERS.get(redis_server.url)
    if shared is not None:
        yield shared
        return
    logs = tmp_path_factory.mktemp("router-cluster")
    replicas = [
        ReplicaProcess(ROUTER_CONFIG, model, redis_server.url, log_path=logs / f"{model}.log")
        for model in ALWAYS_ON_MODELS
    ]
    router = RouterProcess(ROUTER_CONFIG, redis_server.url, log_path=logs / "router.log")
    try:
        for replica in replicas:
            replica.start()
        router.start()
        for model in ALWAYS_ON_MODELS:
            router.wait_for_replicas(model, 1)
        _CLUSTERS[redis_server.url] = router
        yield router
    finally:
        _CLUSTERS.pop(redis_server.url, None)
        router.stop()
        for replica in replicas:
            replica.stop()


@pytest.fixture()
def sim_router(router_cluster: RouterProcess) -> RouterProcess:
    return router_cluster
