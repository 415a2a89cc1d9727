"""The ``fleetgate keys`` CLI as tests run it: a subprocess against a given Redis, its listing parsed."""

from __future__ import annotations

import os
import subprocess
import sys

from router_process import REPO, ROUTER_CONFIG


def keys_cli(redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FLEETGATE_REDIS__URL": redis_url}
    return subprocess.run(
        [sys.executable, "-m", "fleetgate.launcher.cli", "keys", "--config", str(ROUTER_CONFIG), *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )


def create_key(redis_url: str, name: str, *options: str) -> str:
    """A new key's secret; ``options`` such as ``--rpm 2``."""
    result = keys_cli(redis_url, "create", "--name", name, *options)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


LIST_COLUMNS = ["ID", "NAME", "CREATED", "REVOKED", "RPM", "TPM", "ROLE", "OWNER", "BUDGETS", "MODELS", "OTHER"]


def listed(redis_url: str) -> dict[str, dict[str, str]]:
    """name -> {column: value} of ``fleetgate keys list`` (the last key of a repeated name)."""
    result = keys_cli(redis_url, "list")
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == LIST_COLUMNS
    return {row.split()[1]: dict(zip(LIST_COLUMNS, row.split(), strict=False)) for row in rows}
