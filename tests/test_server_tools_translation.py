"""Server-side tools in the pure layers: what each dialect's request asks for, how a ran call is segmented and
folded, and how an earlier answer's server-side blocks and items come back as the model's history."""

from __future__ import annotations

import pytest

from fleetgate.core import events
from fleetgate.router.canonical.fold import CompletionFolder
from fleetgate.router.dialects.chat.protocol import ChatCompletionRequest
from fleetgate.router.dialects.messages import protocol as messages_wire
from fleetgate.router.dialects.messages.request import canonical_messages
from fleetgate.router.dialects.responses.conversation import normalize_items, parse_items, to_messages
from fleetgate.router.dialects.responses.protocol import ResponsesRequest
from fleetgate.router.dialects.responses.server_tools import server_tool_request
from fleetgate.router.errors import ApiError
from fleetgate.v1 import replica_pb2 as pb


def _responses(**fields) -> ResponsesRequest:
    return ResponsesRequest.model_validate({"model": "m", "input": "hi", **fields})


def test_responses_mcp_tools_hosted_tools_and_approval_rules() -> None:
    request = _responses(tools=[
        {"type": "mcp", "server_label": "a", "server_url": "https://a.test/mcp", "authorization": "tok",
         "headers": {"x-k": "v"}, "allowed_tools": {"tool_names": ["add"]},
         "require_approval": {"never": {"tool_names": ["add"]}}},
        {"type": "mcp", "server_label": "b", "server_url": "https://b.test/mcp", "require_approval": "never",
         "allowed_tools": ["x", "y"]},
        {"type": "web_search_preview"}, {"type": "code_interpreter", "container": {"type": "auto"}},
        {"type": "file_search"},
    ], prompt_cache_key="conv-1")
    asked = server_tool_request(request, [])
    a, b = asked.mcp_servers
    assert a.headers == {"x-k": "v", "Authorization": "Bearer tok"} and a.allowed_tools == {"add"}
    assert a.param == "tools[0]" and not a.approval.required("add") and a.approval.required("other")
    assert b.allowed_tools == {"x", "y"} and not b.approval.required("x")
    assert asked.hosted_builtins == ("web_search", "python") and asked.builtins == ()
    assert asked.session_id == "conv-1"
    # OpenAI's default: every call of a server needs approval.
    default = server_tool_request(_responses(tools=[{"type": "mcp", "server_label": "c", "server_url": "http://c"}]),
                                  [])
    assert default.mcp_servers[0].approval.required("anything")


@pytest.mark.parametrize(("tools", "param"), [
    ([{"type": "mcp", "server_label": "a", "connector_id": "connector_gmail"}], "tools[0].server_url"),
    ([{"type": "mcp", "server_label": "a", "server_url": "http://a"},
      {"type": "mcp", "server_label": "a", "server_url": "http://b"}], "tools"),
])
def test_responses_mcp_refusals(tools: list[dict], param: str) -> None:
    with pytest.raises(ApiError) as refused:
        server_tool_request(_responses(tools=tools), [])
    assert refused.value.status == 400 and refused.value.param == param


def test_approval_response_is_matched_with_its_request() -> None:
    conversation = normalize_items(_responses(input=[
        {"type": "mcp_approval_request", "id": "mcpr_1", "server_label": "a", "name": "add",
         "arguments": '{"a": 1}'}]).items)
    request = _responses(input=[{"type": "mcp_approval_response", "approval_request_id": "mcpr_1",
                                 "approve": False, "reason": "no"}],
                         tools=[{"type": "mcp", "server_label": "a", "server_url": "http://a"}])
    [answer] = server_tool_request(request, conversation).approvals
    assert (answer.name, answer.arguments, answer.approve, answer.reason) == ("add", '{"a": 1}', False, "no")
    # Answered already (its mcp_call is in the history): not run again.
    ran = [*conversation, {"type": "mcp_call", "id": "mcp_1", "approval_request_id": "mcpr_1", "name": "add",
                           "server_label": "a", "output": "2"}]
    assert server_tool_request(request, ran).approvals == ()


def test_history_items_of_server_tools_become_call_and_result() -> None:
    items = parse_items(normalize_items(_responses(input=[
        {"role": "user", "content": "go"},
        {"type": "mcp_list_tools", "server_label": "a", "tools": []},
        {"type": "mcp_call", "id": "mcp_1", "server_label": "a", "name": "add", "arguments": "{}", "output": "5"},
        {"type": "code_interpreter_call", "id": "ci_1", "code": "print(1)", "container_id": "",
         "outputs": [{"type": "logs", "logs": "1\n"}], "status": "completed"},
        {"type": "web_search_call", "id": "ws_1", "status": "completed", "action": {"type": "search", "query": "q"}},
    ]).items))
    messages = to_messages(None, items)
    assert [m.role for m in messages] == [pb.ROLE_USER, pb.ROLE_ASSISTANT, pb.ROLE_TOOL, pb.ROLE_ASSISTANT,
                                          pb.ROLE_TOOL]
    assert (messages[1].tool_calls[0].name, messages[2].content[0].text) == ("add", "5")
    assert (messages[3].tool_calls[0].name, messages[3].tool_calls[0].arguments) == ("python", '{"code": "print(1)"}')
    assert messages[4].content[0].text == "1\n" and messages[4].tool_call_id == "ci_1"


def test_chat_shorthand_fields() -> None:
    def asked(**fields):  # type: ignore[no-untyped-def]
        body = {"model": "m", "messages": [{"role": "user", "content": "x"}], **fields}
        return ChatCompletionRequest.model_validate(body).server_tool_request()

    assert asked() is None and asked(enabled_tools=["python"]) is None  # nothing without enable_tools
    default = asked(enable_tools=True, session_id="s")
    assert (default.builtins, default.hosted_builtins, default.session_id) == (("python", "bash"), ("web_search",), "s")
    assert asked(enable_tools=True, enabled_tools=["web_search", "web_search"]).builtins == ("web_search",)


def test_a_ran_call_is_one_segment_between_the_text_around_it() -> None:
    folder = CompletionFolder()
    call = pb.ServerToolCall(id="call_1", tool="python", name="python", arguments='{"code": "1"}', output="1")
    for event in (events.started(3, "r"), events.text("Let me run it. "), pb.GenerateEvent(server_tool=call),
                  events.text("It is 1."), events.finish(pb.Finish.REASON_STOP)):
        folder.add(event)
    completion = folder.completion
    assert [s.kind for s in completion.segments] == ["text", "server_tool", "text"]
    assert [s.position for s in completion.segments] == [0, 1, 2]
    assert completion.server_tools == [call] and completion.text == "Let me run it. It is 1."


def test_messages_history_with_server_tool_blocks() -> None:
    request = messages_wire.MessagesRequest.model_validate({"model": "m", "max_tokens": 8, "messages": [
        {"role": "user", "content": "run it"},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Running."},
            {"type": "server_tool_use", "id": "srvtoolu_1", "name": "bash_code_execution", "input": {"command": "ls"}},
            {"type": "bash_code_execution_tool_result", "tool_use_id": "srvtoolu_1",
             "content": {"type": "bash_code_execution_result", "stdout": "a\n", "stderr": "", "return_code": 0,
                         "content": []}},
            {"type": "text", "text": "Done."}]},
        {"role": "user", "content": "thanks"}]})
    messages = canonical_messages(request)
    assert [m.role for m in messages] == [pb.ROLE_USER, pb.ROLE_ASSISTANT, pb.ROLE_TOOL, pb.ROLE_ASSISTANT,
                                          pb.ROLE_USER]
    assert messages[1].content[0].text == "Running." and messages[1].tool_calls[0].id == "srvtoolu_1"
    assert (messages[2].tool_call_id, messages[2].content[0].text) == ("srvtoolu_1", "a\n")
    assert messages[3].content[0].text == "Done."
