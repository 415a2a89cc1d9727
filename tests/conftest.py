"""Shared fixtures: a real redis-server per test session, repo paths; free ports from fleetgate.core.local_processes."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import redis

from fleetgate.core.local_processes import free_port, terminate, wait_for_port

REPO = Path(__file__).resolve().parent.parent


class RedisServer:
    """A real redis-server on a free port, in a temp dir; restartable (same port, same data)."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: run `make setup`")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir),
             "--save", "", "--appendonly", "yes", "--protected-mode", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, process=self.proc, what="redis-server")

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc, what="redis-server", timeout=10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory):
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture()
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


# --- replica processes (tests/replica_process.py) ------------------------------------------

from replica_process import SIM_CONFIG, ReplicaProcess  # noqa: E402  (tests/ is on sys.path)


@pytest.fixture()
def replica_factory(redis_server: RedisServer, tmp_path: Path):
    """Registered replicas, stopped afterwards.

    ``start(model="sim", config=SIM_CONFIG, **kwargs) -> ReplicaProcess``
    """
    started: list[ReplicaProcess] = []

    def start(model: str = "sim", config: Path = SIM_CONFIG, **kwargs) -> ReplicaProcess:
        replica = ReplicaProcess(
            config, model, redis_server.url, log_path=tmp_path / f"replica-{len(started)}.log", **kwargs
        )
        started.append(replica)
        replica.start()
        return replica

    yield start
    for replica in started:
        replica.stop()


@pytest.fixture(scope="session")
def sim_replica(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory):
    """One `sim` replica (tests/configs/sim.yaml) registered in the session's Redis."""
    replica = ReplicaProcess(
        SIM_CONFIG, "sim", redis_server.url, log_path=tmp_path_factory.mktemp("sim-replica") / "replica.log"
    )
    replica.start()
    yield replica
    replica.stop()


VLLM_CONFIG = REPO / "tests" / "configs" / "vllm.yaml"
VLLM_MODEL = "smollm2-135m"


@pytest.fixture(scope="session")
def vllm_replica(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory):
    """One vLLM replica on CPU serving the bundled `smollm2-135m` (tests/configs/vllm.yaml), registered in the
    session's Redis; gRPC at ``vllm_replica.address``. Started once per session (the engine takes ~30 s)."""
    replica = ReplicaProcess(
        VLLM_CONFIG, VLLM_MODEL, redis_server.url, log_path=tmp_path_factory.mktemp("vllm-replica") / "replica.log"
    )
    replica.start(timeout=600)
    yield replica
    replica.stop()


VLLM_EMBED_CONFIG = REPO / "tests" / "configs" / "vllm-embed.yaml"
VLLM_EMBED_MODEL = "all-minilm-l6-v2"


@pytest.fixture(scope="session")
def vllm_embedding_replica(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory):
    """One vLLM replica on CPU serving the bundled embedding model `all-minilm-l6-v2` (task: embed,
    tests/configs/vllm-embed.yaml) in the session's Redis. Started once per session (~35 s)."""
    replica = ReplicaProcess(VLLM_EMBED_CONFIG, VLLM_EMBED_MODEL, redis_server.url,
                             log_path=tmp_path_factory.mktemp("vllm-embedding-replica") / "replica.log")
    replica.start(timeout=600)
    yield replica
    replica.stop()
