"""CPU time (user + system) a process and its children spent, measured over a window of a load run.

The router's own CPU per request and per token holds on a small shared machine
where the load generator competes for the same cores, where wall-clock numbers
do not. ``CpuMeter`` samples the process tree at the start and the end of the
window.
"""

from __future__ import annotations

import psutil


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its live descendants (0 for a process that is gone)."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


class CpuMeter:
    """CPU seconds ``pid``'s tree spends between ``start()`` and ``stop()``."""

    def __init__(self, name: str, pid: int) -> None:
        self.name = name
        self.pid = pid
        self._started: float | None = None
        self.seconds: float | None = None

    def start(self) -> None:
        self._started = tree_cpu_seconds(self.pid)
        self.seconds = None

    def stop(self) -> None:
        if self._started is None:
            raise RuntimeError("CpuMeter.stop() before start()")
        self.seconds = max(0.0, tree_cpu_seconds(self.pid) - self._started)
