"""The type-check tree: the ``fleetgate.*`` namespace laid out as folders, then mypy over it.

setup.py maps ``fleetgate.router`` onto router/, ``fleetgate.replicas`` onto replicas/ and
``fleetgate.loadtest`` onto loadtest/; an editable install does that with an import hook,
which mypy never runs, so mypy alone cannot find those names. This script builds
``.typecheck/fleetgate/`` (gitignored) out of symlinks — the entries of fleetgate/
(``__init__.py``, ``py.typed``, core, launcher, v1) plus one link per folder that setup.py
maps — and runs mypy on the package there with the settings of pyproject.toml
(``[tool.mypy]``). mypy's messages name the real files (router/app.py, not
.typecheck/fleetgate/router/app.py).

    .venv/bin/python tests/typecheck_tree.py [extra mypy arguments]   (what `make check` runs)

The folder mapping is read from setup.py's ``ROOTS``, so the tree follows setup.py;
``fleetgate.deploy`` is data (configs, dashboards) and is left out.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TREE = REPO / ".typecheck"
DATA_ONLY = {"fleetgate.deploy"}


def mapped_folders() -> dict[str, str]:
    """setup.py's ROOTS (import name -> folder) without running setup.py."""
    module = ast.parse((REPO / "setup.py").read_text())
    for node in module.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "ROOTS" for t in node.targets):
            roots: dict[str, str] = ast.literal_eval(node.value)
            return roots
    raise RuntimeError("setup.py defines no ROOTS")


def build_tree() -> dict[str, str]:
    """(Re)build .typecheck/fleetgate/ from symlinks; returns tree path prefix -> real path prefix."""
    package = TREE / "fleetgate"
    shutil.rmtree(package, ignore_errors=True)  # mypy's cache beside it stays
    package.mkdir(parents=True)
    prefixes: dict[str, str] = {}
    for name, folder in mapped_folders().items():
        if name in DATA_ONLY or not (REPO / folder).is_dir():
            continue
        if name == "fleetgate":
            for entry in sorted((REPO / folder).iterdir()):
                if entry.name != "__pycache__":
                    (package / entry.name).symlink_to(os.path.relpath(entry, package))
            continue
        sub = name.removeprefix("fleetgate.")
        (package / sub).symlink_to(os.path.relpath(REPO / folder, package))
        prefixes[f"fleetgate/{sub}/"] = f"{folder}/"
    return prefixes


def real_paths(output: str, prefixes: dict[str, str]) -> str:
    """mypy's messages with the tree's paths (fleetgate/router/x.py) turned into the checkout's (router/x.py)."""
    pattern = re.compile(r"^(" + "|".join(re.escape(p) for p in prefixes) + ")", re.MULTILINE)
    return pattern.sub(lambda m: prefixes[m.group(1)], output) if prefixes else output


def main(argv: list[str]) -> int:
    prefixes = build_tree()
    command = [sys.executable, "-m", "mypy", "--config-file", str(REPO / "pyproject.toml"), "-p", "fleetgate", *argv]
    result = subprocess.run(command, cwd=TREE, capture_output=True, text=True)
    sys.stdout.write(real_paths(result.stdout, prefixes))
    sys.stderr.write(real_paths(result.stderr, prefixes))
    return result.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
