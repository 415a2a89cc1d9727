"""fleetgate.core.local_processes: free ports, waiting for a process to serve, stopping it, its log tail."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from fleetgate.core.local_processes import free_port, log_tail, port_open, terminate, wait_for_port, wait_until


def python(code: str, **popen) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", code], **popen)


def test_a_free_port_is_closed_until_something_listens_on_it() -> None:
    port = free_port()
    assert not port_open("127.0.0.1", port)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", port))
        listener.listen()
        assert port_open("127.0.0.1", port)
        wait_for_port(port, timeout=1)


def test_free_ports_are_distinct_and_never_ones_the_kernel_hands_out_by_itself() -> None:
    """A port given to a process that starts later must not be taken meanwhile by an OS-assigned port (a
    replica on base_port 0 once answered the router's port in test_local_cluster)."""
    low, high = (int(part) for part in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == 50
    assert all(port >= 20000 and not low <= port <= high for port in ports)


def test_waiting_fails_early_with_the_exit_code_and_the_log_tail(tmp_path: Path) -> None:
    log_path = tmp_path / "part.log"
    with log_path.open("wb") as log:
        process = python("print('first'); print('last words'); raise SystemExit(3)", stdout=log)
    with pytest.raises(RuntimeError, match=r"part exited with 3; log .*part.log:\nfirst\nlast words"):
        wait_until(lambda: False, what="part", timeout=30, process=process, log_path=log_path)


def test_waiting_times_out_and_tolerates_the_errors_it_is_told_to() -> None:
    def refused() -> bool:
        raise ConnectionRefusedError

    with pytest.raises(TimeoutError, match="part not ready after 0s"):
        wait_until(refused, what="part", timeout=0.2, interval=0.05, tolerate=(OSError,))
    with pytest.raises(ConnectionRefusedError):
        wait_until(refused, what="part", timeout=0.2)


def test_terminate_kills_what_ignores_sigterm() -> None:
    process = python("import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                     "print('ready', flush=True); time.sleep(60)", stdout=subprocess.PIPE)
    assert process.stdout is not None and process.stdout.readline() == b"ready\n"
    assert terminate(process, what="stubborn", timeout=0.5) == -9
    assert terminate(process, what="stubborn") == -9  # already gone: just its exit code


def test_terminate_stops_with_sigterm_first() -> None:
    process = python("import time; time.sleep(60)")
    assert terminate(process, what="sleeper", timeout=10) == -15


def test_log_tail(tmp_path: Path) -> None:
    log_path = tmp_path / "x.log"
    assert log_tail(log_path) == "(no log)"
    log_path.write_text("".join(f"line {i}\n" for i in range(100)))
    assert log_tail(log_path, lines=2) == "line 98\nline 99"
