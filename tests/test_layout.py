"""The package boundaries: a core that imports neither half, halves that never import each other.

Read from the source (every ``import`` statement, also the ones inside functions), so a
lazy import across a boundary fails here as well as a top-level one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# folder -> (its import name, the fleetgate packages and third-party roots it must never import)
PARTS = {
    "fleetgate/core": ("fleetgate.core", {"fleetgate.router", "fleetgate.replicas", "fleetgate.launcher",
                                          "fleetgate.loadtest", "ray", "vllm", "fastapi"}),
    "router": ("fleetgate.router", {"fleetgate.replicas", "fleetgate.launcher", "fleetgate.loadtest", "ray", "vllm",
                                     "torch", "transformers"}),
    # The canonical layer is pure translation: no HTTP, Redis or gRPC, nothing of the dialects or the pipeline.
    "router/canonical": ("fleetgate.router.canonical", {"fleetgate.router.dialects", "fleetgate.router.pipeline",
                                                        "fleetgate.router.dispatch", "fleetgate.router.state",
                                                        "starlette", "fastapi", "redis", "grpc"}),
    "replicas": ("fleetgate.replicas", {"fleetgate.router", "fleetgate.launcher", "fleetgate.loadtest", "fastapi"}),
    "loadtest": ("fleetgate.loadtest", {"fleetgate.launcher"}),
    # The toolbox is installed into the router's image as well: nothing of the router, the replicas, the
    # launcher or the engine stack.
    "toolbox": ("fleetgate.toolbox", {"fleetgate.router", "fleetgate.replicas", "fleetgate.launcher",
                                      "fleetgate.loadtest", "ray", "vllm", "fastapi"}),
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def crosses(module: str, forbidden: set[str]) -> bool:
    return any(module == f or module.startswith(f + ".") for f in forbidden)


@pytest.mark.parametrize("folder", sorted(PARTS))
def test_no_import_crosses_a_boundary(folder: str) -> None:
    _, forbidden = PARTS[folder]
    found = {
        f"{path.relative_to(REPO)}: {module}"
        for path in sorted((REPO / folder).rglob("*.py"))
        for module in imported_modules(path)
        if crosses(module, forbidden)
    }
    assert not found


def test_no_top_level_router_or_replicas_import() -> None:
    """Everything is imported through the one fleetgate namespace (setup.py), never as a top-level package."""
    stray = {
        f"{path.relative_to(REPO)}: {module}"
        for folder in ("fleetgate", "router", "replicas", "toolbox", "loadtest", "tests")
        for path in sorted((REPO / folder).rglob("*.py"))
        for module in imported_modules(path)
        if module.split(".")[0] in {"router", "replicas", "toolbox", "loadtest"}
    }
    assert not stray
