"""Generate the Python gRPC stubs (``fleetgate/v1/*_pb2*.py``) from ``proto/``.

The stubs are committed, so installs need no code generation; ``make proto``
rewrites them and ``tests/test_proto_stubs.py`` fails when they and the .proto
files disagree (with the pinned grpcio-tools version).
"""

from __future__ import annotations

import sys
from pathlib import Path

# A development tool: it reads proto/ of a checkout (an installed wheel ships the generated stubs).
PROTO_ROOT = Path(__file__).resolve().parents[2] / "proto"


def proto_files() -> list[Path]:
    return sorted(PROTO_ROOT.glob("fleetgate/v1/*.proto"))


def generate(out_dir: Path) -> None:
    """Write the stubs for every .proto under ``proto/`` into ``out_dir`` (package layout kept)."""
    import grpc_tools
    from grpc_tools import protoc  # dev dependency, imported only when generating

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *[str(p) for p in proto_files()],
    ]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed: " + " ".join(args))


def main() -> None:
    generate(PROTO_ROOT.parent)
    print("generated stubs for", ", ".join(p.name for p in proto_files()), file=sys.stderr)


if __name__ == "__main__":
    main()
