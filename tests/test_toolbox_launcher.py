"""``fleetgate up``'s toolboxes (``local_cluster.running_toolboxes``): ``tools.toolboxes`` real ``fleetgate
toolbox`` processes on ``tools.base_port`` + n, registered in Redis, each with a uid range of its own, behind
the run's token, withdrawn when stopped; none when ``tools.enabled`` is off.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import grpc
import pytest
import redis
import yaml

from fleetgate.core.config import load_config
from fleetgate.core.local_processes import free_port, port_open
from fleetgate.core.replica_auth import call_metadata
from fleetgate.core.toolbox_registry import ToolboxRecord
from fleetgate.launcher.local_cluster import running_toolboxes
from fleetgate.v1 import toolbox_pb2 as pb
from fleetgate.v1 import toolbox_pb2_grpc as pb_grpc

pytestmark = [
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed"),
    pytest.mark.skipif(os.geteuid() != 0, reason="the toolbox drops sandboxes to their own uids: needs root"),
    pytest.mark.timeout(90),
]


def write_config(tmp_path: Path, enabled: bool) -> Path:
    work_root = tempfile.mkdtemp(prefix="fleetgate-toolbox-up-", dir="/tmp")
    base_port = free_port()
    while port_open("127.0.0.1", base_port + 1):
        base_port = free_port()
    tools = {"enabled": enabled, "toolboxes": 2, "base_port": base_port, "heartbeat_seconds": 0.2,
             "sandbox": {"work_root": work_root, "uid_base": 63000, "max_sessions": 3}}
    path = tmp_path / "toolboxes.yaml"
    path.write_text(yaml.safe_dump({"replica": {"auth_token": "up-token"}, "tools": tools}))
    return path


def test_up_starts_the_configured_toolboxes(tmp_path: Path, redis_url: str) -> None:
    path = write_config(tmp_path, enabled=True)
    config = load_config(path, environ={})
    store = redis.Redis.from_url(redis_url)
    supervised: list = []
    with running_toolboxes(path, config, redis_url, supervised):
        assert [child.what for child in supervised] == ["toolbox 0", "toolbox 1"]
        uids = []
        for n in range(2):
            stored = store.get(f"fleetgate:toolbox:local-toolbox-{n}")
            assert stored is not None
            record = ToolboxRecord.model_validate_json(stored)
            assert record.address == f"127.0.0.1:{config.tools.base_port + n}"
            with grpc.insecure_channel(record.address) as channel:
                stub = pb_grpc.ToolboxStub(channel)
                arguments = json.dumps({"command": "id -u"})
                request = pb.RunToolRequest(tool="bash", arguments_json=arguments, session_id="s")
                with pytest.raises(grpc.RpcError) as refused:
                    stub.RunTool(request, timeout=10)
                assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
                result = stub.RunTool(request, metadata=call_metadata("up-token"), timeout=10)
            assert not result.is_error, result.output
            uids.append(int(result.output))
        assert uids == [63000, 63004]  # uid_base + n * (max_sessions + 1)
    assert not store.keys("fleetgate:toolbox:local-toolbox-*")
    shutil.rmtree(config.tools.sandbox.work_root, ignore_errors=True)


def test_no_toolbox_when_tools_are_off(tmp_path: Path, redis_url: str) -> None:
    path = write_config(tmp_path, enabled=False)
    supervised: list = []
    with running_toolboxes(path, load_config(path, environ={}), redis_url, supervised):
        assert supervised == []
