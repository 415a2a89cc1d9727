"""CPU time (user + system) a process and its children spent, measured over a window of a load run.

The router's own CPU per request and per token holds on a small shared machine
where the load generator competes for the same cores, where wall-clock numbers
do not. ``CpuMeter`` samples the process tree at the start and the end of the
window; ``MachineCpuMeter`` the whole machine's busy time, which tells whether
the cores were saturated (then latency is mostly queueing for a core).
"""

from __future__ import annotations

import psutil

# The name the machine-wide meter's seconds are recorded under.
MACHINE = "machine"


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


def machine_busy_seconds() -> float:
    """CPU seconds all cores of the machine spent busy (not idle or waiting for I/O) since boot."""
    times = psutil.cpu_times()
    busy = times.user + times.system
    for field in ("nice", "irq", "softirq", "steal"):  # Linux; guest time is already part of user
        busy += getattr(times, field, 0.0)
    return busy


class CpuMeter:
    """CPU seconds ``pid``'s tree spends between ``start()`` and ``stop()``."""

    def __init__(self, name: str, pid: int) -> None:
        self.name = name
        self.pid = pid
        self._started: float | None = None
        self.seconds: float | None = None

    def read(self) -> float:
        return tree_cpu_seconds(self.pid)

    def start(self) -> None:
        self._started = self.read()
        self.seconds = None

    def stop(self) -> None:
        if self._started is None:
            raise RuntimeError(f"{type(self).__name__}.stop() before start()")
        self.seconds = max(0.0, self.read() - self._started)


class MachineCpuMeter(CpuMeter):
    """Busy CPU seconds of the whole machine (all cores) between ``start()`` and ``stop()``."""

    def __init__(self, name: str = MACHINE) -> None:
        super().__init__(name, pid=0)

    def read(self) -> float:
        return machine_busy_seconds()
