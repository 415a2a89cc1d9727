"""Helpers for the processes a machine runs for itself: free ports, waiting until one serves, stopping it, its log,
and keeping it running (``SupervisedProcess``: restarted when it dies, within a budget).

Used by ``fleetgate up`` and its local Prometheus (``fleetgate.launcher``), the
benchmark (``fleetgate.loadtest.bench.processes``) and the tests' process
fixtures, so a port is found, a start is awaited and a process is stopped the
same way everywhere. Standard library only.
"""

from __future__ import annotations

import contextlib
import logging
import random
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

LOCALHOST = "127.0.0.1"
# How long ``port_open`` waits for a connection.
_CONNECT_TIMEOUT_SECONDS = 0.5


# Ports handed out are drawn from here: above Ray's worker ports (10002-19999 by default) and outside the kernel's
# ephemeral range, so the port a process is told to listen on is not taken in the meantime by a connection's or an
# ``bind(0)`` listener's port (a replica on base_port 0, Ray, Redis clients) before that process starts.
_HANDED_OUT_PORTS_FROM = 20000
_EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_DEFAULT_EPHEMERAL_RANGE = (32768, 60999)
_FREE_PORT_TRIES = 200
_handed_out: set[int] = set()


def _ephemeral_range() -> tuple[int, int]:
    """The kernel's ephemeral port range (Linux's default when it cannot be read)."""
    try:
        low, high = (int(part) for part in _EPHEMERAL_RANGE_FILE.read_text().split())
    except (OSError, ValueError):
        return _DEFAULT_EPHEMERAL_RANGE
    return low, high


def free_port(host: str = LOCALHOST) -> int:
    """A port nothing listens on at ``host`` right now, outside the ephemeral range and not handed out before by
    this process (the OS picks one when no such port is found)."""
    low, high = _ephemeral_range()
    candidates = [p for p in range(_HANDED_OUT_PORTS_FROM, 65536) if not low <= p <= high and p not in _handed_out]
    for port in random.sample(candidates, min(_FREE_PORT_TRIES, len(candidates))):
        with socket.socket() as s, contextlib.suppress(OSError):
            s.bind((host, port))
            _handed_out.add(port)
            return port
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    """Whether something accepts connections on ``host:port``."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=_CONNECT_TIMEOUT_SECONDS):
        return True
    return False


def log_tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of the log at ``path`` (``(no log)`` when it cannot be read)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_until(
    ready: Callable[[], bool],
    *,
    what: str,
    timeout: float,
    process: subprocess.Popen[bytes] | None = None,
    log_path: Path | None = None,
    interval: float = 0.1,
    tolerate: tuple[type[BaseException], ...] = (),
) -> None:
    """Poll ``ready()`` every ``interval`` seconds until it returns true.

    Raises ``RuntimeError`` as soon as ``process`` has exited ("<what> exited with <code>")
    and ``TimeoutError`` after ``timeout`` seconds; both end with the tail of ``log_path``
    when one is given. An exception of a ``tolerate`` type from ``ready()`` counts as not ready.
    """
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(*tolerate):
            if ready():
                return
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}{_log_suffix(log_path)}")
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} not ready after {timeout:.0f}s{_log_suffix(log_path)}")
        time.sleep(interval)


def wait_for_port(
    port: int,
    *,
    host: str = LOCALHOST,
    timeout: float = 30.0,
    process: subprocess.Popen[bytes] | None = None,
    what: str | None = None,
    interval: float = 0.05,
) -> None:
    """Until something listens on ``host:port``; fails early when ``process`` exits (see ``wait_until``)."""
    wait_until(lambda: port_open(host, port), what=what or f"{host}:{port}", timeout=timeout, process=process,
               interval=interval)


def terminate(process: subprocess.Popen[bytes], *, what: str, timeout: float = 15.0) -> int:
    """SIGTERM, then SIGKILL when it has not exited after ``timeout`` seconds; returns the exit code."""
    if process.poll() is not None:
        return process.returncode
    process.terminate()
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        log.warning("%s did not stop in %.0fs; killing it", what, timeout)
        process.kill()
        return process.wait()


class RestartsExhausted(RuntimeError):
    """A supervised process died again after its last allowed restart (or could not be started again)."""


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class SupervisedProcess:
    """A child process started by ``launch`` and awaited by ``ready``, restarted whenever ``check`` finds it dead.

    At most ``max_restarts`` restarts within any ``window_seconds``: one more death raises ``RestartsExhausted``.
    A restart whose ``ready`` fails (the process exits again or never serves) counts against the budget, and
    the next ``check`` tries again. Every death and restart is announced (stderr by default).
    """

    def __init__(
        self,
        what: str,
        launch: Callable[[], subprocess.Popen[bytes]],
        ready: Callable[[subprocess.Popen[bytes]], None],
        *,
        max_restarts: int = 3,
        window_seconds: float = 60.0,
        announce: Callable[[str], None] = _to_stderr,
    ) -> None:
        self.what = what
        self._launch = launch
        self._ready = ready
        self.max_restarts = max_restarts
        self.window_seconds = window_seconds
        self._announce = announce
        self._restart_times: deque[float] = deque()
        self.restarts = 0
        self.process = launch()
        try:
            ready(self.process)
        except BaseException:
            terminate(self.process, what=what, timeout=5)
            raise

    def check(self) -> bool:
        """Restart the process if it has exited; whether it did. Raises ``RestartsExhausted`` past the budget."""
        code = self.process.poll()
        if code is None:
            return False
        now = time.monotonic()
        while self._restart_times and now - self._restart_times[0] > self.window_seconds:
            self._restart_times.popleft()
        if len(self._restart_times) >= self.max_restarts:
            raise RestartsExhausted(
                f"{self.what} exited with code {code} after {len(self._restart_times)} restarts in "
                f"{self.window_seconds:.0f}s; giving up"
            )
        self._restart_times.append(now)
        self._announce(
            f"fleetgate: {self.what} exited with code {code}; restarting it (restart {len(self._restart_times)} "
            f"of at most {self.max_restarts} in {self.window_seconds:.0f}s)"
        )
        try:
            self.process = self._launch()
            self._ready(self.process)
        except (OSError, RuntimeError, TimeoutError) as exc:
            self._announce(f"fleetgate: {self.what} did not come back: {exc}")
            terminate(self.process, what=self.what, timeout=5)  # a launched process that never served
            return True
        self.restarts += 1
        self._announce(f"fleetgate: {self.what} is back after {time.monotonic() - now:.1f}s")
        return True

    def stop(self, timeout: float = 15.0) -> int:
        return terminate(self.process, what=self.what, timeout=timeout)


def _log_suffix(log_path: Path | None) -> str:
    return "" if log_path is None else f"; log {log_path}:\n{log_tail(log_path)}"
