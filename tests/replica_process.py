"""Run ``fleetgate replica`` as a real subprocess for tests: start, wait until registered, stop or kill.

    with ReplicaProcess(SIM_CONFIG, "sim", redis_url) as replica:
        ...  # gRPC at replica.address, its registry record in replica.record
    # leaving the block stops it with SIGTERM (drain)

Fixtures in conftest.py: ``replica_factory`` (function scope, started replicas
are stopped afterwards) and ``sim_replica`` (one ``sim`` replica per session).

The process gets its Redis through ``FLEETGATE_REDIS__URL``; its output goes to a
log file whose tail is shown when it fails to register.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import redis

from fleetgate.core import local_processes
from fleetgate.core.registry import REPLICA_KEY_PREFIX, ReplicaRecord

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "tests" / "configs"
SIM_CONFIG = CONFIGS / "sim.yaml"


class ReplicaProcess:
    """One ``fleetgate replica`` process serving ``model`` from ``config_path``, registered in ``redis_url``."""

    def __init__(
        self,
        config_path: str | os.PathLike[str],
        model: str,
        redis_url: str,
        *,
        replica_id: str | None = None,
        env: dict[str, str] | None = None,
        log_path: str | os.PathLike[str] | None = None,
    ) -> None:
        self.config_path = Path(config_path)
        self.model = model
        self.redis_url = redis_url
        self.replica_id = replica_id or f"{model}-test-{uuid.uuid4().hex[:6]}"
        self.env = env or {}
        self.log_path = Path(log_path) if log_path else Path(tempfile.gettempdir()) / f"fleetgate-{self.replica_id}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.record: ReplicaRecord | None = None

    # -- lifecycle ---------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> ReplicaRecord:
        """Launch the process and return its registry record once it is registered."""
        env = {**os.environ, **self.env, "FLEETGATE_REDIS__URL": self.redis_url, "PYTHONUNBUFFERED": "1"}
        command = [
            sys.executable, "-m", "fleetgate.launcher.cli", "replica",
            "--config", str(self.config_path), "--model", self.model, "--replica-id", self.replica_id,
        ]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.record = self.wait_registered(timeout)
        return self.record

    def wait_registered(self, timeout: float) -> ReplicaRecord:
        records: list[ReplicaRecord] = []

        def registered() -> bool:
            record = self.registry_record()
            if record is not None:
                records.append(record)
            return record is not None

        local_processes.wait_until(registered, what=f"replica {self.replica_id}", timeout=timeout,
                                   process=self.proc, log_path=self.log_path)
        return records[-1]

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM (drain) and wait for the exit code."""
        return self._signal(signal.SIGTERM, timeout)

    def kill(self, timeout: float = 10.0) -> int:
        """SIGKILL: the replica vanishes without withdrawing (its record expires by TTL)."""
        return self._signal(signal.SIGKILL, timeout)

    def wait_exit(self, timeout: float = 30.0) -> int:
        assert self.proc is not None, "not started"
        return self.proc.wait(timeout=timeout)

    def _signal(self, signum: int, timeout: float) -> int:
        assert self.proc is not None, "not started"
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        return self.proc.wait(timeout=timeout)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self) -> ReplicaProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Terminate if running; kill when it does not drain in time."""
        if self.proc is not None:
            local_processes.terminate(self.proc, what=f"replica {self.replica_id}", timeout=30)

    # -- what it serves ----------------------------------------------------------

    @property
    def address(self) -> str:
        assert self.record is not None, "not registered"
        return self.record.address

    def registry_record(self) -> ReplicaRecord | None:
        """The replica's current record in Redis, or None when it is not registered."""
        client = redis.Redis.from_url(self.redis_url)
        try:
            raw = client.get(REPLICA_KEY_PREFIX + self.replica_id)
        finally:
            client.close()
        return ReplicaRecord.model_validate_json(raw) if raw else None

    def log_tail(self, lines: int = 40) -> str:
        return local_processes.log_tail(self.log_path, lines)
