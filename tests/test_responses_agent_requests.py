"""What Codex CLI sends to /v1/responses is accepted: its request shapes, with the official SDK and httpx.

Shaped like Codex CLI 0.171's requests (its own prompt text is not reproduced): developer and
user messages, ``namespace`` tools and a hosted ``web_search`` tool, ``store: false``,
``include: ["reasoning.encrypted_content"]``, ``prompt_cache_key``, ``client_metadata``,
``reasoning.summary``, and outputs of namespace tools without a ``call_id``.
"""

from __future__ import annotations

import json

import httpx

from router_process import RouterProcess, router_cluster, sim_router  # noqa: F401

SPAWN = {"type": "function", "name": "spawn_agent", "description": "Start a sub-agent", "strict": False,
         "parameters": {"type": "object", "properties": {"task": {"type": "string"}}, "required": ["task"]}}
EXEC = {"type": "function", "name": "exec_command", "description": "Run a command", "strict": False,
        "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"]}}


def codex_request(user_text: str, history: list[dict] | None = None) -> dict:
    return {
        "model": "rt-sim",
        "stream": False,
        "input": [
            {
                "type": "message",
                "role": "developer",
                "content": [{"type": "input_text", "text": "You are a coding agent."}],
            },
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "<environment_context/>"}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": user_text}]},
            *(history or []),
        ],
        "tools": [
            EXEC,
            {"type": "namespace", "name": "multi_agent_v1", "description": "Sub-agents", "tools": [SPAWN]},
            {"type": "web_search", "external_web_access": False},
        ],
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "reasoning": {"summary": "auto"},
        "store": False,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "01a23387-20b0-7dc0-b0d2-dac04524bd6a",
        "client_metadata": {"x-codex-installation-id": "967813b0"},
    }


def post(router: RouterProcess, body: dict) -> httpx.Response:
    return httpx.post(f"{router.base_url}/v1/responses", json=body, timeout=30,
                      headers={"x-codex-beta-features": "remote_compaction_v2", "originator": "codex_exec"})


def test_a_namespace_function_is_offered_and_called_back_split(sim_router: RouterProcess) -> None:
    answer = post(sim_router, codex_request('[[sim:call multi_agent_v1.spawn_agent {"task": "lint"}]]'))
    assert answer.status_code == 200, answer.text
    (call,) = answer.json()["output"]
    assert (call["type"], call["namespace"], call["name"]) == ("function_call", "multi_agent_v1", "spawn_agent")
    assert json.loads(call["arguments"]) == {"task": "lint"}


def test_a_plain_function_call_has_no_namespace(sim_router: RouterProcess) -> None:
    answer = post(sim_router, codex_request('[[sim:call exec_command {"cmd": "ls"}]]'))
    assert answer.status_code == 200, answer.text
    (call,) = answer.json()["output"]
    assert call["name"] == "exec_command" and "namespace" not in call


def test_a_namespace_tool_output_without_call_id_is_accepted(sim_router: RouterProcess) -> None:
    history = [
        {"type": "function_call", "call_id": "call_1", "namespace": "multi_agent_v1", "name": "spawn_agent",
         "arguments": '{"task": "lint"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "agent a1 started"},
        {"type": "function_call_output", "id": "fco_7", "name": "goal_objective", "namespace": "agent",
         "output": "Finish the lint run"},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "[[sim:say noted]] go on"}]},
    ]
    answer = post(sim_router, codex_request("start the sub-agent", history))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "completed"
    assert body["output"][0]["content"][0]["text"] == "noted"
