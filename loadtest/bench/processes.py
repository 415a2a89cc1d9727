"""Start the parts a benchmark measures as real processes, wait until they serve, and always stop them.

Every process runs in its own session (process group), so stopping it also
stops what it spawned (vLLM's engine core, uvicorn workers). ``ProcessSet`` is
a context manager: leaving it, normally or by an exception or Ctrl-C, stops
every process it started, newest first (SIGTERM, then SIGKILL after a grace
period). Output goes to one log file per process, whose tail is shown when a
process fails to come up. Ports, waiting and log tails are
``fleetgate.core.local_processes``, shared with ``fleetgate up`` and the tests.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import redis

from fleetgate.core import local_processes
from fleetgate.core.local_processes import LOCALHOST, free_port
from fleetgate.core.registry import REPLICA_KEY_PREFIX, ReplicaRecord

REPO = Path(__file__).resolve().parents[2]
# Poll a part's readiness this often.
READY_POLL_SECONDS = 0.25


class ProcessFailed(RuntimeError):
    """A part exited or did not become ready in time; the message carries its log tail."""


@dataclass
class ManagedProcess:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM the process group, SIGKILL it when it has not exited after ``grace`` seconds."""
        if self.alive:
            self._signal_group(signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        # The leader may be gone while children it spawned linger in the group.
        self._signal_group(signal.SIGKILL)
        if self.alive:
            self.proc.wait(timeout=10)

    def _signal_group(self, signum: int) -> None:
        try:
            os.killpg(self.proc.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass


class ProcessSet:
    """The processes of one benchmark step; stops them all (newest first) when the block exits."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.processes: list[ManagedProcess] = []

    def spawn(self, name: str, argv: Sequence[str], env: dict[str, str] | None = None) -> ManagedProcess:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(list(argv), cwd=REPO, env=full_env, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        process = ManagedProcess(name, proc, log_path)
        self.processes.append(process)
        return process

    def stop(self, process: ManagedProcess) -> None:
        process.stop()
        self.processes.remove(process)

    def stop_all(self) -> None:
        while self.processes:
            self.processes.pop().stop()

    def __enter__(self) -> ProcessSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()


def wait_until(ready: Callable[[], bool], process: ManagedProcess, timeout: float, what: str) -> None:
    """Poll ``ready()`` until true; ``ProcessFailed`` when ``process`` exits first, or after ``timeout`` seconds."""
    try:
        local_processes.wait_until(ready, what=f"{process.name}: {what}", timeout=timeout, process=process.proc,
                                   log_path=process.log_path, interval=READY_POLL_SECONDS,
                                   tolerate=(OSError, httpx.HTTPError, redis.RedisError))
    except (RuntimeError, TimeoutError) as exc:
        raise ProcessFailed(str(exc)) from exc


def serves_model(base_url: str, model: str) -> Callable[[], bool]:
    """A readiness check: ``GET /v1/models`` lists ``model``."""

    def check() -> bool:
        resp = httpx.get(f"{base_url}/v1/models", timeout=2.0)
        return resp.status_code == 200 and any(m.get("id") == model for m in resp.json().get("data") or ())

    return check


# -- the parts -------------------------------------------------------------------------


def start_redis(processes: ProcessSet) -> str:
    """A throwaway redis-server (no persistence) on a free port; returns its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise ProcessFailed("redis-server is not installed (make apt)")
    port = free_port()
    process = processes.spawn("redis", [binary, "--port", str(port), "--bind", LOCALHOST, "--save", "",
                                        "--appendonly", "no", "--protected-mode", "no"])

    def ping() -> bool:
        client = redis.Redis(host=LOCALHOST, port=port, socket_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()

    wait_until(ping, process, 20, "redis")
    return f"redis://{LOCALHOST}:{port}/0"


def _fleetgate(*args: str) -> list[str]:
    return [sys.executable, "-m", "fleetgate.launcher.cli", *args]


def start_replica(processes: ProcessSet, config_path: Path, model: str, redis_url: str, *, name: str,
                  timeout: float = 60.0, env: dict[str, str] | None = None) -> tuple[ManagedProcess, ReplicaRecord]:
    """``fleetgate replica`` serving ``model``; returns once it is registered, with its registry record."""
    replica_id = f"{name}-{uuid.uuid4().hex[:6]}"
    process = processes.spawn(name, _fleetgate("replica", "--config", str(config_path), "--model", model,
                                               "--replica-id", replica_id),
                              env={**(env or {}), "FLEETGATE_REDIS__URL": redis_url})
    records: list[ReplicaRecord] = []

    def registered() -> bool:
        client = redis.Redis.from_url(redis_url, socket_timeout=1)
        try:
            raw = client.get(REPLICA_KEY_PREFIX + replica_id)
        finally:
            client.close()
        if raw:
            records.append(ReplicaRecord.model_validate_json(raw))
        return bool(raw)

    wait_until(registered, process, timeout, "replica registration")
    return process, records[-1]


def start_router(processes: ProcessSet, config_path: Path, model: str, redis_url: str, *, name: str = "router",
                 timeout: float = 60.0, env: dict[str, str] | None = None) -> tuple[ManagedProcess, str]:
    """``fleetgate router`` on a free port; returns once its /v1/models lists ``model``, with its base URL."""
    port = free_port()
    process = processes.spawn(name, _fleetgate("router", "--config", str(config_path), "--host", LOCALHOST,
                                               "--port", str(port)),
                              env={**(env or {}), "FLEETGATE_REDIS__URL": redis_url})
    base_url = f"http://{LOCALHOST}:{port}"
    wait_until(serves_model(base_url, model), process, timeout, "router")
    return process, base_url


def start_bare_relay(processes: ProcessSet, replica_address: str, model: str, *,
                     timeout: float = 60.0) -> tuple[ManagedProcess, str]:
    """The reference relay (``loadtest.bench.bare_relay``) in front of one replica; returns its base URL."""
    port = free_port()
    process = processes.spawn("bare-relay", [sys.executable, "-m", "fleetgate.loadtest.bench.bare_relay", "--replica",
                                             replica_address, "--model", model, "--port", str(port)])
    base_url = f"http://{LOCALHOST}:{port}"
    wait_until(serves_model(base_url, model), process, timeout, "bare relay")
    return process, base_url


def start_vllm_server(processes: ProcessSet, model_path: str, served_name: str, engine_flags: Sequence[str],
                      env: dict[str, str], *, timeout: float = 600.0) -> tuple[ManagedProcess, str]:
    """vLLM's own OpenAI server (``python -m vllm.entrypoints.openai.api_server``); returns its base URL when up."""
    port = free_port()
    argv = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--host", LOCALHOST, "--port", str(port),
            "--model", model_path, "--served-model-name", served_name, *engine_flags]
    process = processes.spawn("vllm-server", argv, env=env)
    base_url = f"http://{LOCALHOST}:{port}"
    wait_until(serves_model(base_url, served_name), process, timeout, "vLLM server")
    return process, base_url


def start_litellm_proxy(processes: ProcessSet, litellm_bin: Path, config_path: Path, model: str, *,
                        log_config_path: Path | None = None, timeout: float = 180.0) -> tuple[ManagedProcess, str]:
    """LiteLLM's proxy (one worker) from its own virtualenv; returns its base URL when it lists ``model``."""
    port = free_port()
    argv = [str(litellm_bin), "--config", str(config_path), "--host", LOCALHOST, "--port", str(port),
            "--num_workers", "1", "--telemetry", "False"]
    if log_config_path is not None:
        argv += ["--log_config", str(log_config_path)]
    # Offline machine: use the bundled model cost map instead of fetching it; no telemetry.
    env = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY": "False", "LITELLM_LOG": "ERROR"}
    process = processes.spawn("litellm", argv, env=env)
    base_url = f"http://{LOCALHOST}:{port}"
    wait_until(serves_model(base_url, model), process, timeout, "LiteLLM proxy")
    return process, base_url
