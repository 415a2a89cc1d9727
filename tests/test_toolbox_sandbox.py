"""The toolbox's python and bash tools over real gRPC and real bubblewrap: results, sessions, and every escape
(network, writes outside /work, fork bombs, endless loops, huge output, memory) ending as an is_error result
while the toolbox keeps answering. Also the shared-token check. The toolbox runs in-process on a loopback port
(``toolbox_factory``, imported by the other toolbox tests), registered in the suite's real Redis.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis

from fleetgate.core.config import FleetgateConfig
from fleetgate.core.replica_auth import call_metadata
from fleetgate.core.toolbox_registry import ToolboxRecord
from fleetgate.toolbox.server import RunningToolbox, start_toolbox
from fleetgate.v1 import toolbox_pb2 as pb
from fleetgate.v1 import toolbox_pb2_grpc as pb_grpc

pytestmark = [
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed"),
    pytest.mark.skipif(os.geteuid() != 0, reason="the toolbox drops sandboxes to their own uids: needs root"),
    pytest.mark.timeout(60),
]

TOKEN = "toolbox-test-token"
TIMEOUT = 2.0
MAX_OUTPUT = 4096
MAX_PROCESSES = 16


class ToolboxClient:
    """A stub on one toolbox, sending the shared token."""

    def __init__(self, running: RunningToolbox, channel: grpc.aio.Channel) -> None:
        self.running = running
        self.stub = pb_grpc.ToolboxStub(channel)
        self.metadata = call_metadata(TOKEN)

    async def run(self, tool: str, arguments: dict[str, Any] | str, **fields: Any) -> pb.ToolResult:
        raw = arguments if isinstance(arguments, str) else json.dumps(arguments)
        request = pb.RunToolRequest(request_id="test", tool=tool, arguments_json=raw, **fields)
        result: pb.ToolResult = await self.stub.RunTool(request, metadata=self.metadata, timeout=30)
        return result

    async def python(self, code: str, session_id: str = "s1", key_id: str = "key-a") -> pb.ToolResult:
        return await self.run("python", {"code": code}, session_id=session_id, key_id=key_id)

    async def bash(self, command: str, session_id: str = "s1", key_id: str = "key-a") -> pb.ToolResult:
        return await self.run("bash", {"command": command}, session_id=session_id, key_id=key_id)


def toolbox_config(redis_url: str, sandbox: dict[str, Any] | None = None, **tools: Any) -> FleetgateConfig:
    """Small limits for a fast suite, a work_root under /tmp (reachable by the sandbox uids), the token set;
    ``sandbox`` overrides sandbox settings, ``tools`` other tools settings."""
    work_root = tempfile.mkdtemp(prefix="fleetgate-toolbox-test-", dir="/tmp")
    limits = {
        "timeout_seconds": TIMEOUT,
        "memory_mb": 512,
        "max_processes": MAX_PROCESSES,
        "max_output_bytes": MAX_OUTPUT,
        "max_file_mb": 8,
        "work_root": work_root,
        "uid_base": 62000,
        "max_sessions": 4,
        **(sandbox or {}),
    }
    return FleetgateConfig.model_validate(
        {
            "redis": {"url": redis_url},
            "replica": {"auth_token": TOKEN},
            "tools": {"enabled": True, "heartbeat_seconds": 0.2, "sandbox": limits, **tools},
        }
    )


ToolboxFactory = Callable[..., Awaitable[ToolboxClient]]


@pytest.fixture()
async def toolbox_factory(redis_url: str) -> AsyncIterator[ToolboxFactory]:
    """Starts toolboxes (tools config overrides as keyword arguments); all stopped after the test."""
    started: list[tuple[RunningToolbox, grpc.aio.Channel, str]] = []

    async def start(**tools: Any) -> ToolboxClient:
        config = toolbox_config(redis_url, **tools)
        running = await start_toolbox(config, host="127.0.0.1", port=0, toolbox_id=f"test-{len(started)}")
        channel = grpc.aio.insecure_channel(running.address)
        started.append((running, channel, config.tools.sandbox.work_root))
        return ToolboxClient(running, channel)

    yield start
    for running, channel, work_root in started:
        await channel.close()
        await running.stop()
        shutil.rmtree(work_root, ignore_errors=True)


@pytest.fixture()
async def toolbox(toolbox_factory: ToolboxFactory) -> ToolboxClient:
    return await toolbox_factory()


async def test_python_computes_and_shows_the_last_expression(toolbox: ToolboxClient) -> None:
    result = await toolbox.python("123*456")
    assert (result.output, result.is_error, result.outcome, result.exit_code) == ("56088\n", False, "ok", 0)
    assert result.seconds > 0


async def test_python_state_is_kept_in_a_session_and_not_shared(toolbox: ToolboxClient) -> None:
    assert not (await toolbox.python("x = 5")).is_error
    assert (await toolbox.python("print(x)")).output == "5\n"
    for other in (await toolbox.python("print(x)", session_id="s2"), await toolbox.python("print(x)", key_id="key-b")):
        assert other.is_error and other.outcome == "error"
        assert "NameError" in other.output
    fresh = await toolbox.python("print(x)", session_id="")
    assert fresh.is_error and "NameError" in fresh.output


async def test_bash_files_persist_in_a_session(toolbox: ToolboxClient) -> None:
    assert not (await toolbox.bash("echo hello > notes.txt")).is_error
    assert (await toolbox.bash("cat notes.txt")).output == "hello\n"
    # python of the same session sees the same working directory
    assert (await toolbox.python("open('notes.txt').read()")).output == "'hello\\n'\n"
    other = await toolbox.bash("cat notes.txt", session_id="s2")
    assert other.is_error and other.exit_code == 1 and "No such file" in other.output


@pytest.mark.parametrize("arguments", ['{"cmd": "ls"}', '{"code": 3}', "[1, 2]", "not json"])
async def test_bad_arguments_are_an_error_result(toolbox: ToolboxClient, arguments: str) -> None:
    for tool in ("python", "bash"):
        result = await toolbox.run(tool, arguments, session_id="s1")
        assert result.is_error and result.outcome == "error"
        assert "expected {" in result.output


async def test_no_network(toolbox: ToolboxClient) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    try:
        for host in ("127.0.0.1", "1.1.1.1"):
            code = f"import socket\ns = socket.socket()\ns.settimeout(1)\ns.connect(({host!r}, {port}))"
            result = await toolbox.python(code)
            assert result.is_error and result.outcome == "error", result.output
            assert "Error" in result.output
        assert (await toolbox.bash("exec 3<>/dev/tcp/1.1.1.1/80")).is_error
    finally:
        listener.close()


@pytest.mark.parametrize("path", ["/usr/evil", "/etc/passwd", "/evil", "/work/../evil", "/proc/sys/kernel/evil"])
async def test_no_write_outside_the_working_directory(toolbox: ToolboxClient, path: str) -> None:
    result = await toolbox.python(f"open({path!r}, 'w').write('x')")
    assert result.is_error and result.outcome == "error"
    assert "Error" in result.output
    assert (await toolbox.bash(f"echo x > {path}")).is_error
    assert not Path(path).exists() or path.startswith("/etc") or path.startswith("/proc")
    assert (await toolbox.python("1 + 1")).output == "2\n"  # still answering


async def test_python_fork_bomb_is_bounded_and_killed(toolbox: ToolboxClient) -> None:
    counted = await toolbox.python(
        "import os, time\nn = 0\ntry:\n    while True:\n        if os.fork() == 0:\n            time.sleep(30)\n"
        "            os._exit(0)\n        n += 1\nexcept OSError:\n    print(n)"
    )
    assert not counted.is_error
    assert 0 < int(counted.output) < MAX_PROCESSES
    started = time.monotonic()
    bomb = await toolbox.python(
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    )
    assert bomb.is_error and bomb.outcome == "timeout" and bomb.exit_code == -1
    assert time.monotonic() - started < TIMEOUT + 3
    assert "state" in bomb.output and "lost" in bomb.output
    assert (await toolbox.python("print('alive')")).output == "alive\n"


async def test_bash_fork_bomb_is_bounded(toolbox: ToolboxClient) -> None:
    started = time.monotonic()
    # The classic bomb backgrounds itself and bash exits at once: the whole pid namespace dies with it.
    await toolbox.bash(":(){ :|:& };:", session_id="bomb")
    count = "ls /proc | grep -c '^[0-9]'"
    assert (await toolbox.bash(count, session_id="bomb")).output == (await toolbox.bash(count, session_id="")).output
    foreground = await toolbox.bash(":(){ :|: ; }; :", session_id="bomb")
    assert foreground.is_error and foreground.outcome in ("timeout", "error")
    assert time.monotonic() - started < 2 * TIMEOUT + 3
    assert (await toolbox.bash("echo alive", session_id="bomb")).output == "alive\n"


async def test_endless_loop_is_killed_at_the_timeout(toolbox: ToolboxClient) -> None:
    assert not (await toolbox.python("x = 1")).is_error
    started = time.monotonic()
    result = await toolbox.python("while True: pass")
    took = time.monotonic() - started
    assert result.is_error and result.outcome == "timeout" and result.exit_code == -1
    assert TIMEOUT <= took < TIMEOUT + 2
    assert "timeout" in result.output
    lost = await toolbox.python("print(x)")  # a fresh kernel
    assert lost.is_error and "NameError" in lost.output
    looping = await toolbox.bash("while :; do :; done")
    assert looping.outcome == "timeout" and looping.exit_code == -1


@pytest.mark.parametrize("tool,code", [("python", "print('x' * 100_000_000)"), ("bash", "yes | head -c 100000000")])
async def test_huge_output_is_cut(toolbox: ToolboxClient, tool: str, code: str) -> None:
    arguments = {"code": code} if tool == "python" else {"command": code}
    result = await toolbox.run(tool, arguments, session_id="s1", key_id="key-a")
    assert result.outcome == "output_limit" and result.is_error
    assert len(result.stdout.encode()) <= MAX_OUTPUT
    printed = 100_000_000 + (tool == "python")  # print's newline
    assert result.output.endswith(f"[output truncated: {printed - MAX_OUTPUT} bytes not shown]")


async def test_memory_hog_gets_memory_error(toolbox: ToolboxClient) -> None:
    result = await toolbox.python("b = bytearray(4 * 1024**3)")
    assert result.is_error and result.outcome == "memory"
    assert "MemoryError" in result.output
    assert (await toolbox.python("print('alive')")).output == "alive\n"


async def test_toolbox_registers_and_withdraws(toolbox_factory: ToolboxFactory, redis_url: str) -> None:
    client = await toolbox_factory()
    record_key = f"fleetgate:toolbox:{client.running.toolbox.toolbox_id}"
    stored = redis.Redis.from_url(redis_url).get(record_key)
    assert stored is not None
    record = ToolboxRecord.model_validate_json(stored)
    assert record.address == client.running.address and record.tools == ["python", "bash"]
    info = await client.stub.ToolboxInfo(pb.ToolboxInfoRequest(), metadata=client.metadata)
    assert list(info.tools) == ["python", "bash"] and info.toolbox_id == record.toolbox_id
    await client.running.heartbeat.withdraw()
    assert redis.Redis.from_url(redis_url).get(record_key) is None


async def test_a_call_without_the_token_is_refused(toolbox: ToolboxClient) -> None:
    request = pb.RunToolRequest(tool="python", arguments_json='{"code": "1"}')
    for metadata in ((), (("x-fleetgate-replica-token", "wrong"),)):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await toolbox.stub.RunTool(request, metadata=metadata)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_output_of_child_processes_counts_against_the_same_limit(toolbox: ToolboxClient) -> None:
    result = await toolbox.python("import os\nprint('a' * 3000)\nos.system('yes b | head -c 3000 >&2')")
    assert result.outcome == "output_limit"
    assert len((result.stdout + result.stderr).encode()) <= MAX_OUTPUT
    assert "a" * 3000 in result.stdout and "b" in result.stderr


async def test_sessions_expire_and_the_least_recently_used_goes_first(toolbox_factory: ToolboxFactory) -> None:
    toolbox = await toolbox_factory(sandbox={"session_ttl_seconds": 0.6})
    assert not (await toolbox.python("x = 1", session_id="old")).is_error
    await asyncio.sleep(1.2)  # past the TTL: a heartbeat (every 0.2 s) drops the session
    assert "NameError" in (await toolbox.python("x", session_id="old")).output
    lru = await toolbox_factory()  # max_sessions 4
    for n in range(5):
        assert not (await lru.python(f"x = {n}", session_id=f"s{n}")).is_error
    assert (await lru.python("x", session_id="s4")).output == "4\n"
    assert "NameError" in (await lru.python("x", session_id="s0")).output  # the least recently used went


async def test_calls_of_one_session_run_one_at_a_time(toolbox: ToolboxClient) -> None:
    nap = "import time; time.sleep(1)"
    started = time.monotonic()
    await asyncio.gather(toolbox.python(nap, session_id="a"), toolbox.python(nap, session_id="b"))
    apart = time.monotonic() - started
    started = time.monotonic()
    await asyncio.gather(toolbox.python(nap, session_id="a"), toolbox.python(nap, session_id="a"))
    together = time.monotonic() - started
    assert apart < 1.8 and together >= 2


async def test_a_new_session_while_all_are_busy_is_unavailable(toolbox: ToolboxClient) -> None:
    naps = [toolbox.python("import time; time.sleep(1)", session_id=f"busy{n}") for n in range(4)]  # max_sessions
    running = asyncio.gather(*naps)
    while len(toolbox.running.toolbox.sessions) < 4:  # all four in use (a session exists from its first call on)
        await asyncio.sleep(0.01)
    refused = await toolbox.python("1", session_id="one-too-many")
    assert refused.is_error and refused.outcome == "unavailable" and "in use" in refused.output
    assert not any(result.is_error for result in await running)
    assert (await toolbox.python("1", session_id="one-too-many")).output == "1\n"  # an idle session made room
