"""What Claude Code sends to /v1/messages is accepted: the shapes of its requests, with the official SDK.

The request below is shaped like Claude Code 2.1.197's (its own prompt text is not reproduced):
the attribution header first among the system blocks, ``cache_control`` on blocks, a
``role: "system"`` turn inside ``messages``, ``thinking: adaptive``, ``output_config.effort``,
``context_management``, ``metadata.user_id``, two dozen tools, ``max_tokens: 32000``,
its ``anthropic-beta`` header and ``?beta=true``.
"""

from __future__ import annotations

import json

import httpx

from messages_helpers import anthropic_client, shape, stream_message
from router_process import RouterProcess, router_cluster, sim_router  # noqa: F401

BETAS = ("claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27,"
         "prompt-caching-scope-2026-01-05,mid-conversation-system-2026-04-07,effort-2025-11-24")
EPHEMERAL = {"type": "ephemeral"}


def agent_request(model: str = "rt-sim") -> dict:
    tools = [{"name": f"Tool{i}", "description": f"tool number {i}", "cache_control": EPHEMERAL if i == 23 else None,
              "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}}
             for i in range(24)]
    for tool in tools:
        if tool["cache_control"] is None:
            del tool["cache_control"]
    return {
        "model": model,
        "max_tokens": 32000,
        "stream": False,
        "system": [
            {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.197.0df; cc_entrypoint=cli;"},
            {"type": "text", "text": "You are an agent for software engineering.", "cache_control": EPHEMERAL},
        ],
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "<system-reminder>context</system-reminder>"},
                {"type": "text", "text": "list the files", "cache_control": EPHEMERAL},
            ]},
            {"role": "system", "content": "The user's working directory is /work."},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "toolu_01", "name": "Tool1", "input": {"path": "."},
                 "cache_control": EPHEMERAL},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01", "content": "a.py b.py",
                 "cache_control": EPHEMERAL},
                {"type": "text", "text": "which one is bigger? [[sim:say b.py is bigger.]]"},
            ]},
        ],
        "tools": tools,
        "metadata": {"user_id": json.dumps({"device_id": "d1", "account_uuid": "", "session_id": "s1"})},
        "thinking": {"type": "adaptive"},
        "output_config": {"effort": "high"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "some_future_field": {"nested": [1, 2]},
    }


def post(router: RouterProcess, body: dict) -> httpx.Response:
    return httpx.post(f"{router.base_url}/v1/messages?beta=true", json=body, timeout=30,
                      headers={"anthropic-beta": BETAS, "anthropic-version": "2023-06-01", "x-app": "cli"})


def test_claude_code_shaped_request_is_served(sim_router: RouterProcess) -> None:
    answer = post(sim_router, agent_request())
    assert answer.status_code == 200, answer.text
    body = answer.json()
    # The last user turn scripts the simulator's answer.
    assert [block["type"] for block in body["content"]] == ["text"]
    assert body["content"][0]["text"] == "b.py is bigger."
    assert body["stop_reason"] == "end_turn"


def test_claude_code_shaped_request_streams(sim_router: RouterProcess) -> None:
    request = agent_request()
    request.pop("stream")
    extra = {k: request.pop(k) for k in ("context_management", "some_future_field", "output_config")}
    client = anthropic_client(sim_router)
    events, message = stream_message(client, **request, extra_body=extra, extra_headers={"anthropic-beta": BETAS})
    assert shape(events) == ["message_start", "content_block_start:text", "content_block_delta:text_delta",
                             "content_block_stop", "message_delta", "message_stop"]
    assert message.content[0].text == "b.py is bigger."


def test_a_system_turn_counts_as_prompt(sim_router: RouterProcess) -> None:
    client = anthropic_client(sim_router)
    base = [{"role": "user", "content": "hello there"}]
    with_system = [*base, {"role": "system", "content": "one two three four"}]
    plain = client.messages.count_tokens(model="rt-sim", messages=base).input_tokens
    counted = client.messages.count_tokens(model="rt-sim", messages=with_system).input_tokens  # type: ignore[arg-type]
    assert counted == plain + 5  # four words and the role marker


def test_an_unknown_content_block_type_is_a_400_naming_it(sim_router: RouterProcess) -> None:
    body = agent_request()
    body["messages"][0]["content"].append({"type": "hologram", "data": "x"})
    answer = post(sim_router, body)
    assert answer.status_code == 400
    error = answer.json()
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    message = error["error"]["message"]
    assert message.startswith("messages[0].content[2]: unsupported type 'hologram' (expected one of ")
    assert "'text'" in message and "Input tag" not in message


def test_a_system_turn_with_an_image_is_a_400(sim_router: RouterProcess) -> None:
    body = agent_request()
    body["messages"][1] = {"role": "system", "content": [{"type": "image", "source": {"type": "url", "url": "x"}}]}
    answer = post(sim_router, body)
    assert answer.status_code == 400
    assert answer.json()["error"]["message"].startswith("messages[1].content[0].type: Input should be 'text'")
