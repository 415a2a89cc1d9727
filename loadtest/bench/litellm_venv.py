"""LiteLLM's proxy in its own virtualenv (``.bench-venvs/litellm``), created on first use, never in ``.venv``.

The version is pinned: LiteLLM releases 1.82.7, 1.82.8 and 1.107.0 were
compromised on PyPI (credential stealers), so the benchmark installs 1.82.6,
the last release made before the first compromise, and refuses to run any
other version it finds in the virtualenv.
"""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

from fleetgate.loadtest.bench.processes import REPO

LITELLM_VERSION = "1.82.6"
COMPROMISED_VERSIONS = frozenset({"1.82.7", "1.82.8", "1.107.0"})
DEFAULT_VENV = REPO / ".bench-venvs" / "litellm"


def _installed_version(venv_dir: Path) -> str | None:
    python = venv_dir / "bin" / "python"
    if not python.exists():
        return None
    probe = subprocess.run([str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
                           capture_output=True, text=True)
    return probe.stdout.strip() if probe.returncode == 0 else None


def ensure_litellm(venv_dir: Path = DEFAULT_VENV) -> Path:
    """The ``litellm`` executable of the pinned proxy, installing it into ``venv_dir`` when missing."""
    if not (venv_dir / "bin" / "python").exists():
        print(f"[bench] creating {venv_dir} for LiteLLM's proxy", flush=True)
        venv.EnvBuilder(with_pip=True, clear=False).create(venv_dir)
    installed = _installed_version(venv_dir)
    if installed in COMPROMISED_VERSIONS:
        raise RuntimeError(f"{venv_dir} holds litellm {installed}, a compromised release: delete the directory")
    if installed != LITELLM_VERSION:
        print(f"[bench] installing litellm[proxy]=={LITELLM_VERSION} into {venv_dir} (once)", flush=True)
        subprocess.run([str(venv_dir / "bin" / "python"), "-m", "pip", "install", "--quiet",
                        f"litellm[proxy]=={LITELLM_VERSION}"], check=True, stdout=sys.stderr)
    return venv_dir / "bin" / "litellm"
