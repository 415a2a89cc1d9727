"""The committed gRPC stubs (fleetgate/v1/) are exactly what the .proto files generate."""

from __future__ import annotations

from pathlib import Path

from fleetgate.core.protogen import PROTO_ROOT, generate


def test_committed_stubs_match_the_proto(tmp_path: Path):
    generate(tmp_path)
    generated = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert generated, "protoc produced nothing"
    committed_root = PROTO_ROOT.parent
    stale = [str(path) for path, content in generated.items() if (committed_root / path).read_bytes() != content]
    assert not stale, f"stubs differ from proto/: {stale}; run `make proto` and commit"
