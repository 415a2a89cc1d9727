"""Files shipped inside the package (``deploy/``, installed as ``fleetgate.deploy``).

Found through ``importlib.resources``, so a wheel installed anywhere finds them as a
checkout does; a file the installation lacks is a clear error naming it.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def shipped_path(relative: str) -> Path:
    """The path of ``relative`` (for example ``local.yaml``, ``prometheus/prometheus.yml``) under ``deploy/``."""
    path = Path(str(resources.files("fleetgate.deploy").joinpath(relative)))
    if not path.exists():
        raise FileNotFoundError(f"fleetgate ships no file {relative!r} (looked in {path.parent})")
    return path
