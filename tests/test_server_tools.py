"""Server-side tools end to end: official SDKs -> router process -> tool loop -> toolbox process (real bubblewrap)
-> a real MCP server (the official SDK's ``MCPServer``), with the sim's scripted mode playing the model.

The model side is the prompt's script (``[[sim:call TOOL {...}]]`` then ``[[sim:say ... {tool_result}]]``), so
every tool call is a decision of the test; what runs is real: python and bash in the toolbox's sandbox, MCP
tools over streamable HTTP, web search through an MCP search server. Asserted as a client sees it: the
dialect's items, blocks and events in order, the answer quoting the tool's output, usage adding up over the
turns, errors in the dialect's shape, the key's permission, the MCP allowlist, the approval round trip.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import pytest
import redis
from openai.types.responses import ResponseStreamEvent
from pydantic import TypeAdapter

from conftest import VLLM_MODEL
from fleetgate.core import toolbox_registry
from fleetgate.core.local_processes import free_port, terminate, wait_until
from keys_helpers import create_key
from replica_process import ReplicaProcess
from router_process import REPO, RouterProcess, router_cluster, sim_router  # noqa: F401 - fixtures
from test_usage import key_id, wait_for_row

pytestmark = [
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed"),
    pytest.mark.timeout(120),
]

CONFIG = REPO / "tests" / "configs" / "server-tools.yaml"
MODEL = "st-sim"
TOOLBOXES = ("tb-one", "tb-two")
UID_BASES = (61000, 62000)
MULTIPLY = '[[sim:call python {"code": "print(123 * 456)"}]] [[sim:say The product is {tool_result}.]]'


class Cluster:
    def __init__(self, router: RouterProcess, mcp_base: str) -> None:
        self.router = router
        self.mcp_base = mcp_base

    @property
    def mcp_url(self) -> str:
        return f"{self.mcp_base}/tools/mcp"

    def post(self, path: str, body: dict, **headers: str) -> httpx.Response:
        return httpx.post(f"{self.router.base_url}{path}", json=body, headers=headers, timeout=60)

    def stream_lines(self, path: str, body: dict) -> list[str]:
        with httpx.stream("POST", f"{self.router.base_url}{path}", json={**body, "stream": True}, timeout=60) as r:
            assert r.status_code == 200, r.read()
            return [line for line in r.iter_lines() if line]

    def anthropic(self) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.router.base_url, api_key="unused", max_retries=0, timeout=60)


def _start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)


@pytest.fixture(scope="module")
def tools_env(redis_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], str, Path]]:
    """A real MCP server (tests/mcp_test_servers.py) and one toolbox process; the environment a router of CONFIG
    needs to reach them (the allowlist names the MCP server, web search goes to its search server)."""
    logs = tmp_path_factory.mktemp("server-tools")
    # Sandboxes run under their own uids: their working directories live where those uids can reach.
    work_root = Path(tempfile.mkdtemp(prefix="fleetgate-st-"))
    work_root.chmod(0o711)
    mcp_port = free_port()
    mcp_base = f"http://127.0.0.1:{mcp_port}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "FLEETGATE_REDIS__URL": redis_server.url,
           "FLEETGATE_TOOLS__MCP_ALLOWED_URLS": json.dumps([f"{mcp_base}/tools"]),
           "FLEETGATE_TOOLS__WEB_SEARCH": json.dumps({"backend": "mcp", "mcp_url": f"{mcp_base}/search/mcp",
                                                      "max_results": 2}),
           "FLEETGATE_TOOLS__SANDBOX__WORK_ROOT": str(work_root / "work")}
    mcp = _start([sys.executable, str(REPO / "tests" / "mcp_test_servers.py"), str(mcp_port)], env, logs / "mcp.log")
    # Two toolboxes: a session's calls must find its kernel on the one its key and session hash to.
    # Each toolbox on one host needs sandbox uids of its own (fleetgate up gives each a range; here by hand).
    toolboxes = {name: _start([sys.executable, "-m", "fleetgate.launcher.cli", "toolbox", "--config", str(CONFIG),
                               "--port", str(free_port()), "--toolbox-id", name],
                              {**env, "FLEETGATE_TOOLS__SANDBOX__UID_BASE": str(uid_base)}, logs / f"{name}.log")
                 for name, uid_base in zip(TOOLBOXES, UID_BASES, strict=True)}
    client = redis.Redis.from_url(redis_server.url)
    try:
        wait_until(lambda: httpx.get(f"{mcp_base}/tools/mcp", timeout=1).status_code > 0, what="MCP server",
                   timeout=30, process=mcp, log_path=logs / "mcp.log", tolerate=(httpx.HTTPError,))
        for name, toolbox in toolboxes.items():
            wait_until(lambda name=name: client.exists(toolbox_registry.TOOLBOX_KEY_PREFIX + name) == 1,
                       what=name, timeout=30, process=toolbox, log_path=logs / f"{name}.log")
        yield {k: v for k, v in env.items() if k.startswith("FLEETGATE_TOOLS__")}, mcp_base, logs
    finally:
        for name, toolbox in toolboxes.items():
            terminate(toolbox, what=name, timeout=20)
        terminate(mcp, what="MCP server", timeout=10)
        shutil.rmtree(work_root, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster(redis_server, tools_env) -> Iterator[Cluster]:
    env, mcp_base, logs = tools_env
    replica = ReplicaProcess(CONFIG, MODEL, redis_server.url, log_path=logs / "replica.log")
    router = RouterProcess(CONFIG, redis_server.url, env=env, log_path=logs / "router.log")
    replica.start()
    try:
        with router:
            router.wait_for_replicas(MODEL, 1)
            yield Cluster(router, mcp_base)
    finally:
        replica.stop()


def _chat(cluster: Cluster, script: str, **fields) -> httpx.Response:
    return cluster.post("/v1/chat/completions", {"model": MODEL, "messages": [{"role": "user", "content": script}],
                                                 "enable_tools": True, **fields})


def _events(lines: list[str]) -> list[tuple[str | None, dict | str]]:
    """``(event name or None, data)`` of each SSE frame."""
    out: list[tuple[str | None, dict | str]] = []
    name: str | None = None
    for line in lines:
        if line.startswith("event: "):
            name = line[len("event: "):]
        elif line.startswith("data: "):
            data = line[len("data: "):]
            out.append((name, data if data == "[DONE]" else json.loads(data)))
            name = None
    return out


# ---------------------------------------------------------------- Chat Completions: the enable_tools shorthand


def test_chat_python_in_the_sandbox_answers_56088_and_usage_adds_up(cluster: Cluster) -> None:
    plain = cluster.post("/v1/chat/completions", {"model": MODEL, "messages": [{"role": "user", "content": MULTIPLY}]})
    body = _chat(cluster, MULTIPLY).json()
    assert body["choices"][0]["message"]["content"] == "The product is 56088."
    assert body["choices"][0]["finish_reason"] == "stop"
    [result] = body["tool_results"]
    assert (result["tool"], result["name"], json.loads(result["arguments"])) == (
        "python", "python", {"code": "print(123 * 456)"})
    assert result["output"].strip() == "56088" and result["is_error"] is False
    assert result["detail"]["exit_code"] == 0 and result["detail"]["outcome"] == "ok"
    # Two turns were charged: the prompt twice (the second with the call and its result), both answers.
    usage, alone = body["usage"], plain.json()["usage"]
    assert usage["prompt_tokens"] > 2 * alone["prompt_tokens"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert cluster.router.metric("fleetgate_server_tool_calls_total", tool="python", outcome="ok") >= 1


def test_chat_stream_shows_the_tool_result_event_before_the_answer(cluster: Cluster) -> None:
    events = _events(cluster.stream_lines("/v1/chat/completions", {
        "model": MODEL, "messages": [{"role": "user", "content": MULTIPLY}], "enable_tools": True,
        "stream_options": {"include_usage": True}}))
    names = [name for name, _ in events]
    assert names.count("tool_result") == 1 and events[-1] == (None, "[DONE]")
    where = names.index("tool_result")
    chunk = events[where][1]
    assert isinstance(chunk, dict) and chunk["object"] == "chat.completion.chunk" and chunk["choices"] == []
    assert chunk["tool_result"]["output"].strip() == "56088"
    before = [data for name, data in events[:where]]
    assert before[0]["choices"][0]["delta"]["role"] == "assistant"  # type: ignore[index]
    text = "".join(d["choices"][0]["delta"].get("content") or "" for _, d in events[where + 1:-1]  # type: ignore[index]
                   if isinstance(d, dict) and d["choices"])
    assert text == "The product is 56088."
    # No tool_calls delta: the client has nothing to run.
    assert not any(isinstance(d, dict) and d.get("choices") and d["choices"][0]["delta"].get("tool_calls")
                   for _, d in events)
    assert events[-2][1]["usage"]["total_tokens"] > 0  # type: ignore[index]


SESSIONS = [f"st-{n}" for n in range(4)]


def test_the_sessions_below_spread_over_both_toolboxes() -> None:
    """What makes the session test mean something: its sessions hash to both toolboxes (auth off: key id "")."""
    records = [toolbox_registry.ToolboxRecord(toolbox_id=name, address="-") for name in TOOLBOXES]
    picked = [toolbox_registry.pick(records, f"\0{session}") for session in SESSIONS]
    assert {record.toolbox_id for record in picked if record is not None} == set(TOOLBOXES)


@pytest.mark.parametrize("session", SESSIONS)
def test_session_keeps_python_state_and_another_session_does_not_see_it(cluster: Cluster, session: str) -> None:
    # Four sessions over two toolboxes: each finds its kernel again, wherever it hashed to.
    first = _chat(cluster, '[[sim:call python {"code": "kept = 41"}]] [[sim:say stored]]', session_id=session).json()
    assert first["tool_results"][0]["is_error"] is False
    again = _chat(cluster, '[[sim:call python {"code": "print(kept + 1)"}]] [[sim:say {tool_result}]]',
                  session_id=session).json()
    assert again["choices"][0]["message"]["content"] == "42"
    other = _chat(cluster, '[[sim:call python {"code": "print(kept + 1)"}]] [[sim:say {tool_result}]]',
                  session_id=session + "-other").json()
    assert other["tool_results"][0]["is_error"] is True and "NameError" in other["tool_results"][0]["output"]


@pytest.mark.parametrize(("code", "outcome"), [
    ("while True: pass", "timeout"),
    ("import socket; socket.create_connection(('1.1.1.1', 80), timeout=2)", "error"),
    ("open('/etc/escaped', 'w').write('x')", "error"),
    ("print('x' * 100_000_000)", "output_limit"),
])
def test_escapes_end_as_a_tool_error_the_model_sees(cluster: Cluster, code: str, outcome: str) -> None:
    script = f'[[sim:call python {json.dumps({"code": code})}]] [[sim:say saw: {{tool_result}}]]'
    body = _chat(cluster, script, enabled_tools=["python"]).json()
    [result] = body["tool_results"]
    assert result["detail"]["outcome"] == outcome
    if outcome == "output_limit":
        assert len(result["output"]) < 4096 and "truncated" in result["output"]
    else:
        assert result["is_error"] is True
    # The model's next turn saw the error (it is quoted), and the server went on answering.
    assert body["choices"][0]["message"]["content"].startswith("saw: ")
    assert _chat(cluster, MULTIPLY).json()["choices"][0]["message"]["content"] == "The product is 56088."


def test_a_client_leaving_during_a_tool_call_leaves_nothing_behind(cluster: Cluster) -> None:
    script = '[[sim:call python {"code": "import time; time.sleep(1.5); print(1)"}]] [[sim:say slept]]'
    body = {"model": MODEL, "messages": [{"role": "user", "content": script}], "enable_tools": True, "stream": True}
    with httpx.stream("POST", f"{cluster.router.base_url}/v1/chat/completions", json=body, timeout=30) as response:
        assert response.status_code == 200
        next(response.iter_lines())  # the stream started: the tool is running now; hang up
    wait_until(lambda: cluster.router.metric("fleetgate_requests_in_flight", model=MODEL) == 0,
               what="the request to end", timeout=15)
    assert _chat(cluster, MULTIPLY).json()["choices"][0]["message"]["content"] == "The product is 56088."


def test_bash_fork_bomb_is_contained(cluster: Cluster) -> None:
    script = '[[sim:call bash {"command": ":(){ :|:& };:"}]] [[sim:say done]]'
    started = time.monotonic()
    body = _chat(cluster, script, enabled_tools=["bash"]).json()
    elapsed = time.monotonic() - started
    [result] = body["tool_results"]
    # The bomb's shell returns at once (its children run in the background, refused more processes by the
    # sandbox's limit); the sandbox dies with it, its processes too, and the model goes on.
    assert result["tool"] == "bash" and result["detail"]["outcome"] in {"ok", "timeout"}
    assert elapsed < 15, elapsed
    assert body["choices"][0]["message"]["content"] == "done"
    wait_until(lambda: not _sandbox_processes("bash"), what="the bomb's shells to be gone", timeout=10)
    assert _chat(cluster, MULTIPLY).json()["choices"][0]["message"]["content"] == "The product is 56088."


def _sandbox_processes(command: str) -> list[int]:
    """Processes named ``command`` under the toolboxes' sandbox uids (zombies included; the python kernels of
    other tests' sessions are named python3)."""
    uids = {base + offset for base in UID_BASES for offset in range(64)}
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid in uids and (entry / "comm").read_text().strip() == command:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_enable_tools_errors_are_in_the_callers_dialect(cluster: Cluster) -> None:
    clash = _chat(cluster, "hi", tools=[{"type": "function", "function": {"name": "python", "parameters": {
        "type": "object"}}}])
    assert clash.status_code == 400 and clash.json()["error"]["param"] == "enable_tools"
    unknown = _chat(cluster, "hi", enabled_tools=["rm_rf"])
    assert unknown.status_code == 400 and unknown.json()["error"]["param"].startswith("enabled_tools")


# ---------------------------------------------------------------- Messages


def test_messages_bash_shows_server_tool_blocks_and_takes_them_back(cluster: Cluster) -> None:
    script = '[[sim:call bash {"command": "echo hello from bash"}]] [[sim:say bash said {tool_result}]]'
    request = {"model": MODEL, "max_tokens": 64, "messages": [{"role": "user", "content": script}]}
    client = cluster.anthropic()
    message = client.messages.create(**request, extra_body={"enable_tools": True, "enabled_tools": ["bash"]})
    assert [block.type for block in message.content] == ["server_tool_use", "bash_code_execution_tool_result", "text"]
    use, result, text = message.content
    assert use.name == "bash_code_execution" and use.input == {"command": "echo hello from bash"}
    assert use.id.startswith("srvtoolu_") and result.tool_use_id == use.id
    assert result.content.stdout.strip() == "hello from bash" and result.content.return_code == 0
    assert text.text == "bash said hello from bash"
    assert message.stop_reason == "end_turn"
    with client.messages.stream(**request, extra_body={"enable_tools": True, "enabled_tools": ["bash"]}) as stream:
        streamed = stream.get_final_message()
    assert [b.type for b in streamed.content] == [b.type for b in message.content]
    assert streamed.content[0].input == use.input and streamed.content[1].tool_use_id == streamed.content[0].id
    assert streamed.content[1].content.model_dump() == result.content.model_dump()
    assert streamed.content[2].text == text.text
    # The answer goes back as history (its server blocks included) and the conversation goes on.
    history = [*request["messages"], {"role": "assistant", "content": [b.model_dump() for b in message.content]},
               {"role": "user", "content": "thanks"}]
    follow = cluster.post("/v1/messages", {**request, "messages": history})
    assert follow.status_code == 200, follow.text


# ---------------------------------------------------------------- Responses: remote MCP, web search, code interpreter


def _mcp_tool(cluster: Cluster, **fields) -> dict:
    return {"type": "mcp", "server_label": "demo", "server_url": cluster.mcp_url, **fields}


STREAM_EVENT: TypeAdapter[ResponseStreamEvent] = TypeAdapter(ResponseStreamEvent)
ADD = '[[sim:call add {"a": 2, "b": 3}]] [[sim:say Sum: {tool_result}]]'


def test_responses_mcp_lists_calls_and_answers(cluster: Cluster) -> None:
    body = cluster.post("/v1/responses", {"model": MODEL, "input": ADD,
                                          "tools": [_mcp_tool(cluster, require_approval="never")]}).json()
    assert [item["type"] for item in body["output"]] == ["mcp_list_tools", "mcp_call", "message"]
    listing, call, message = body["output"]
    assert listing["server_label"] == "demo"
    assert {tool["name"] for tool in listing["tools"]} == {"add", "echo_secret", "explode"}
    assert (call["name"], json.loads(call["arguments"]), call["output"], call["status"]) == (
        "add", {"a": 2, "b": 3}, "5", "completed")
    assert call["id"].startswith("mcp_") and call["server_label"] == "demo"
    assert message["content"][0]["text"] == "Sum: 5"
    assert body["status"] == "completed"


def test_responses_mcp_stream_event_sequence(cluster: Cluster) -> None:
    events = _events(cluster.stream_lines("/v1/responses", {
        "model": MODEL, "input": ADD, "tools": [_mcp_tool(cluster, require_approval="never", allowed_tools=["add"])]}))
    names = [name for name, _ in events]
    assert names[:2] == ["response.created", "response.in_progress"]
    tools_part = names[2:names.index("response.output_item.added", names.index("response.mcp_call.completed"))]
    assert tools_part == [
        "response.output_item.added", "response.mcp_list_tools.in_progress", "response.mcp_list_tools.completed",
        "response.output_item.done",
        "response.output_item.added", "response.mcp_call.in_progress", "response.mcp_call_arguments.delta",
        "response.mcp_call_arguments.done", "response.mcp_call.completed", "response.output_item.done",
    ]
    assert names[-1] == "response.completed"
    for _, data in events:  # every event is one the openai SDK knows, field for field
        STREAM_EVENT.validate_python(data)
    sequence = [data["sequence_number"] for _, data in events]  # type: ignore[index]
    assert sequence == list(range(len(events)))
    final = events[-1][1]["response"]  # type: ignore[index]
    assert [item["type"] for item in final["output"]] == ["mcp_list_tools", "mcp_call", "message"]
    assert [t["name"] for t in final["output"][0]["tools"]] == ["add"]


def test_responses_mcp_approval_round_trip(cluster: Cluster) -> None:
    tools = [_mcp_tool(cluster)]  # require_approval defaults to always, as OpenAI's does
    first = cluster.post("/v1/responses", {"model": MODEL, "input": ADD, "tools": tools}).json()
    assert [item["type"] for item in first["output"]] == ["mcp_list_tools", "mcp_approval_request"]
    request = first["output"][1]
    assert request["id"].startswith("mcpr_") and request["name"] == "add"
    approved = cluster.post("/v1/responses", {
        "model": MODEL, "tools": tools, "previous_response_id": first["id"],
        "input": [{"type": "mcp_approval_response", "approval_request_id": request["id"], "approve": True}]}).json()
    # The history lists the server already: no second mcp_list_tools (OpenAI's follow-up turns show none).
    assert [item["type"] for item in approved["output"]] == ["mcp_call", "message"]
    assert approved["output"][0]["output"] == "5"
    assert approved["output"][0]["approval_request_id"] == request["id"]
    assert approved["output"][1]["content"][0]["text"] == "Sum: 5"
    # The same answer sent again (a client resending its input) does not run the call a second time.
    again = cluster.post("/v1/responses", {
        "model": MODEL, "tools": tools, "previous_response_id": approved["id"],
        "input": [{"type": "mcp_approval_response", "approval_request_id": request["id"], "approve": True}]})
    assert again.status_code == 200, again.text
    assert "mcp_call" not in [item["type"] for item in again.json()["output"]]
    unknown = cluster.post("/v1/responses", {
        "model": MODEL, "tools": tools, "previous_response_id": first["id"],
        "input": [{"type": "mcp_approval_response", "approval_request_id": "mcpr_nope", "approve": True}]})
    assert unknown.status_code == 400 and unknown.json()["error"]["param"] == "input[0].approval_request_id"


def test_responses_mcp_follow_up_turns_take_the_listing_from_the_conversation(cluster: Cluster) -> None:
    tools = [_mcp_tool(cluster, require_approval="never")]
    first = cluster.post("/v1/responses", {"model": MODEL, "input": ADD, "tools": tools}).json()
    assert [item["type"] for item in first["output"]] == ["mcp_list_tools", "mcp_call", "message"]
    follow = cluster.post("/v1/responses", {"model": MODEL, "input": ADD, "tools": tools,
                                            "previous_response_id": first["id"]}).json()
    assert [item["type"] for item in follow["output"]] == ["mcp_call", "message"]
    assert follow["output"][0]["output"] == "5" and follow["output"][1]["content"][0]["text"] == "Sum: 5"
    # Stateless (the listing sent back as input): a server that cannot be listed is not asked again.
    gone = {"type": "mcp", "server_label": "gone", "server_url": f"{cluster.mcp_url}/nothing-here",
            "require_approval": "never"}
    unlisted = cluster.post("/v1/responses", {"model": MODEL, "input": "hello", "tools": [gone]})
    assert unlisted.status_code == 424, unlisted.text
    assert unlisted.json()["error"]["code"] == "mcp_list_tools_failed"
    listing = {"type": "mcp_list_tools", "id": "mcpl_earlier", "server_label": "gone",
               "tools": [{"name": "add", "input_schema": {"type": "object"}}]}
    answered = cluster.post("/v1/responses", {"model": MODEL, "tools": [gone], "store": False,
                                              "input": [listing, {"role": "user", "content": "hello"}]})
    assert answered.status_code == 200, answered.text
    assert [item["type"] for item in answered.json()["output"]] == ["message"]
    # What a listing sent back says is checked as the server's own answer is: a schema that is none is a 400.
    bad = cluster.post("/v1/responses", {"model": MODEL, "tools": [gone], "store": False, "input": [
        {**listing, "tools": [{"name": "add", "input_schema": "an object, trust me"}]},
        {"role": "user", "content": "hello"}]})
    assert bad.status_code == 400, bad.text
    assert "JSON schema" in bad.json()["error"]["message"]
    # A listing that failed does not count: the server is listed (and fails) again.
    failed = cluster.post("/v1/responses", {"model": MODEL, "tools": [gone], "store": False, "input": [
        {**listing, "tools": [], "error": "unreachable"}, {"role": "user", "content": "hello"}]})
    assert failed.status_code == 424, failed.text


def test_responses_mcp_tool_error_and_headers(cluster: Cluster) -> None:
    script = "[[sim:call explode {}]] [[sim:say it said {tool_result}]]"
    body = cluster.post("/v1/responses", {"model": MODEL, "input": script,
                                          "tools": [_mcp_tool(cluster, require_approval="never")]}).json()
    call = body["output"][1]
    assert call["status"] == "failed" and "kaboom" in json.dumps(call["error"])
    secret = cluster.post("/v1/responses", {
        "model": MODEL, "input": "[[sim:call echo_secret {}]] [[sim:say {tool_result}]]",
        "tools": [_mcp_tool(cluster, require_approval="never", headers={"x-test-secret": "open-sesame"})]}).json()
    assert secret["output"][1]["output"] == "open-sesame"


def test_responses_mcp_server_outside_the_allowlist_is_refused(cluster: Cluster) -> None:
    response = cluster.post("/v1/responses", {"model": MODEL, "input": "hi", "tools": [
        {"type": "function", "name": "f"}, _mcp_tool(cluster, server_url=f"{cluster.mcp_base}/search/mcp")]})
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("mcp_server_not_allowed", "tools[1].server_url")


def test_responses_hosted_web_search_and_code_interpreter(cluster: Cluster) -> None:
    script = '[[sim:call web_search {"query": "fleetgate"}]] [[sim:say found it]]'
    body = cluster.post("/v1/responses", {"model": MODEL, "input": script, "tools": [{"type": "web_search"}]}).json()
    assert [item["type"] for item in body["output"]] == ["web_search_call", "message"]
    search = body["output"][0]
    assert search["action"]["query"] == "fleetgate" and search["status"] == "completed"
    assert [s["url"] for s in search["action"]["sources"]] == ["https://example.test/1", "https://example.test/2"]
    interpreter = {"type": "code_interpreter", "container": {"type": "auto"}}
    code = cluster.post("/v1/responses", {"model": MODEL, "input": MULTIPLY, "tools": [interpreter]}).json()
    assert [item["type"] for item in code["output"]] == ["code_interpreter_call", "message"]
    assert code["output"][0]["code"] == "print(123 * 456)"
    assert code["output"][0]["outputs"][0]["logs"].strip() == "56088"
    assert code["output"][1]["content"][0]["text"] == "The product is 56088."


# ---------------------------------------------------------------- deployment and key policy


def test_server_tools_off_on_a_deployment_is_a_400(sim_router: RouterProcess) -> None:
    response = httpx.post(f"{sim_router.base_url}/v1/chat/completions", timeout=30, json={
        "model": "rt-sim", "messages": [{"role": "user", "content": "hi"}], "enable_tools": True})
    assert response.status_code == 400 and response.json()["error"]["code"] == "server_tools_disabled"
    # A hosted tool the request only offers is simply not offered, as before.
    hosted = httpx.post(f"{sim_router.base_url}/v1/responses", timeout=30, json={
        "model": "rt-sim", "input": "hi", "tools": [{"type": "web_search"}]})
    assert hosted.status_code == 200


def test_only_keys_allowed_server_tools_may_use_them(redis_server, tools_env, cluster: Cluster) -> None:
    env, _, logs = tools_env
    router = RouterProcess(CONFIG, redis_server.url, env={**env, "FLEETGATE_ROUTER__AUTH": "true"},
                           log_path=logs / "router-auth.log")
    plain = create_key(redis_server.url, "st-plain")
    allowed = create_key(redis_server.url, "st-tools", "--server-tools")
    with router:
        router.wait_for_replicas(MODEL, 1)
        body = {"model": MODEL, "max_tokens": 64, "messages": [{"role": "user", "content": MULTIPLY}],
                "enable_tools": True}
        refused = httpx.post(f"{router.base_url}/v1/messages", json=body, headers={"x-api-key": plain}, timeout=30)
        assert refused.status_code == 403
        assert refused.json()["type"] == "error" and refused.json()["error"]["type"] == "permission_error"
        served = httpx.post(f"{router.base_url}/v1/messages", json=body, headers={"x-api-key": allowed}, timeout=30)
        assert served.status_code == 200, served.text
        assert served.json()["content"][-1]["text"] == "The product is 56088."
        # The key's usage ledger counts the call its tool loop ran, and both turns' tokens.
        row = wait_for_row(redis_server.url, key_id(redis_server.url, allowed), MODEL, 1)
        assert row["tool_calls"] == 1 and row["errors"] == 0
        assert row["input_tokens"] == served.json()["usage"]["input_tokens"] + served.json()["usage"].get(
            "cache_read_input_tokens", 0) + served.json()["usage"].get("cache_creation_input_tokens", 0)


# ---------------------------------------------------------------- the loop on vLLM CPU


@pytest.mark.timeout(900)  # the session's vLLM engine may start here
def test_tool_loop_on_vllm_with_a_forced_python_call(vllm_replica, cluster: Cluster) -> None:
    """The bundled SmolLM2 on vLLM CPU is forced to call python (structured output); the sandbox runs whatever
    it wrote, the model's next turn sees the result and answers in text."""
    cluster.router.wait_for_replicas(VLLM_MODEL, 1)
    body = cluster.post("/v1/chat/completions", {
        "model": VLLM_MODEL, "enable_tools": True, "enabled_tools": ["python"], "max_tokens": 48, "temperature": 0,
        "messages": [{"role": "user", "content": "Use python to compute 123 * 456."}],
        "tool_choice": {"type": "function", "function": {"name": "python"}}}).json()
    [result] = body["tool_results"]
    assert result["tool"] == "python"
    assert result["detail"]["outcome"] in {"ok", "error", "timeout", "output_limit"}  # the sandbox ran it
    choice = body["choices"][0]
    assert choice["finish_reason"] in {"stop", "length"}
    assert choice["message"]["content"] and choice["message"].get("tool_calls") is None
    # Two turns charged: the second prompt holds the first, the call and its result; max_tokens bounds both.
    assert 0 < body["usage"]["completion_tokens"] <= 48
    assert body["usage"]["prompt_tokens"] > 2 * 20


def test_messages_anthropic_web_search_tool_is_run_by_the_server(cluster: Cluster) -> None:
    """Claude Code's WebSearch sends Anthropic's own server tool; the server's web_search answers it."""
    message = cluster.anthropic().messages.create(
        model=MODEL, max_tokens=64, tools=[{"type": "web_search_20250305", "name": "web_search", "max_uses": 3}],
        tool_choice={"type": "tool", "name": "web_search"},
        messages=[{"role": "user", "content": '[[sim:call web_search {"query": "fleetgate"}]] [[sim:say found]]'}])
    assert [block.type for block in message.content] == ["server_tool_use", "web_search_tool_result", "text"]
    use, results, text = message.content
    assert use.name == "web_search" and use.input == {"query": "fleetgate"} and results.tool_use_id == use.id
    assert [hit.url for hit in results.content] == ["https://example.test/1", "https://example.test/2"]
    assert text.text == "found"


def test_anthropic_server_tools_are_not_offered_where_tools_are_off(sim_router: RouterProcess) -> None:
    response = httpx.post(f"{sim_router.base_url}/v1/messages", timeout=30, json={
        "model": "rt-sim", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "web_search_20250305", "name": "web_search"}],
        "tool_choice": {"type": "tool", "name": "web_search"}})
    # Not offered, and a choice naming it chooses freely instead of failing.
    assert response.status_code == 200, response.text
    assert [block["type"] for block in response.json()["content"]] == ["text"]
