"""What a Responses request asks of server-side tools (pure): its ``mcp`` tools, hosted ``web_search`` and
``code_interpreter``, and the approvals its input answers, as one ``ServerToolRequest``.

An ``mcp`` tool becomes an ``McpServerSpec`` (``server_url``, ``headers`` plus ``authorization`` as a bearer
header, ``allowed_tools``, ``require_approval``: OpenAI's default, ``always``, applies when it is not given);
a ``connector_id`` (OpenAI's hosted connectors) is a 400. A server an ``mcp_list_tools`` item of the conversation
(history or input) has listed already is not listed again: its tools are taken from that item, as OpenAI does
on follow-up turns. ``web_search`` and ``code_interpreter`` are offered
to the model only when the deployment and the key can have them. An ``mcp_approval_response`` in this request's
input is matched with the ``mcp_approval_request`` it answers (in the history or the input): its call then
runs before the model's first turn. The session of python calls is ``session_id``, else ``prompt_cache_key``.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from fleetgate.router.dialects.responses.conversation import ConversationItem
from fleetgate.router.dialects.responses.protocol import (
    ApprovalFilter,
    CodeInterpreterTool,
    McpApprovalResponseItem,
    McpTool,
    ResponsesRequest,
    ToolNames,
    WebSearchTool,
)
from fleetgate.router.errors import echoed, invalid_request
from fleetgate.router.server_tools.declared import (
    ApprovalAnswer,
    ApprovalRule,
    BuiltinTool,
    McpServerSpec,
    ServerToolRequest,
)
from fleetgate.v1 import toolbox_pb2 as tpb


def server_tool_request(request: ResponsesRequest, conversation: Sequence[ConversationItem]) -> ServerToolRequest:
    servers: list[McpServerSpec] = []
    hosted: list[BuiltinTool] = []
    listings = _listings(conversation)
    for index, tool in enumerate(request.tools):
        if isinstance(tool, McpTool):
            servers.append(_server(tool, f"tools[{index}]", listings.get(tool.server_label)))
        elif isinstance(tool, WebSearchTool):
            hosted.append("web_search")
        elif isinstance(tool, CodeInterpreterTool):
            hosted.append("python")
    labels = [server.label for server in servers]
    if len(set(labels)) != len(labels):
        raise invalid_request("tools: each mcp tool needs its own server_label", "tools")
    return ServerToolRequest(hosted_builtins=tuple(hosted), mcp_servers=tuple(servers),
                             session_id=request.session_id or request.prompt_cache_key or "",
                             approvals=_approvals(request, conversation), param="tools")


def _server(tool: McpTool, param: str, listed: tuple[tpb.McpTool, ...] | None) -> McpServerSpec:
    if tool.connector_id is not None or not tool.server_url:
        raise invalid_request("mcp tools need a server_url (connectors are not supported)", f"{param}.server_url")
    headers = dict(tool.headers or {})
    if tool.authorization:
        headers["Authorization"] = f"Bearer {tool.authorization}"
    allowed = tool.allowed_tools
    names = allowed.tool_names if isinstance(allowed, ToolNames) else allowed
    return McpServerSpec(label=tool.server_label, url=tool.server_url, headers=headers,
                         allowed_tools=frozenset(names) if names is not None else None,
                         approval=_approval(tool.require_approval), param=param, listed=listed)


def _listings(conversation: Sequence[ConversationItem]) -> dict[str, tuple[tpb.McpTool, ...]]:
    """Each server label's tools as the conversation's latest good ``mcp_list_tools`` item of it lists them."""
    listings: dict[str, tuple[tpb.McpTool, ...]] = {}
    for item in conversation:
        if item.get("type") != "mcp_list_tools" or item.get("error"):
            continue
        tools = [tool for tool in item.get("tools") or ()
                 if isinstance(tool, dict) and isinstance(tool.get("name"), str)]
        listings[str(item.get("server_label", ""))] = tuple(tpb.McpTool(
            name=tool["name"], description=str(tool.get("description") or ""),
            input_schema_json=_json(tool.get("input_schema")), annotations_json=_json(tool.get("annotations")),
        ) for tool in tools)
    return listings


def _json(value: object) -> str:
    return orjson.dumps(value).decode() if value else ""


def _approval(rule: str | ApprovalFilter | None) -> ApprovalRule:
    if rule is None or rule == "always":
        return ApprovalRule(default_required=True)
    if rule == "never":
        return ApprovalRule(default_required=False)
    assert isinstance(rule, ApprovalFilter)
    always = frozenset(rule.always.tool_names) if rule.always else frozenset()
    never = frozenset(rule.never.tool_names) if rule.never else frozenset()
    # A filter naming tools that never need approval leaves the others at the default (always).
    return ApprovalRule(default_required=True, always=always, never=never)


def _approvals(request: ResponsesRequest, conversation: Sequence[ConversationItem]) -> tuple[ApprovalAnswer, ...]:
    asked = {item.get("id"): item for item in conversation if item.get("type") == "mcp_approval_request"}
    answered = {item.get("approval_request_id") for item in conversation if item.get("type") == "mcp_call"}
    answers: list[ApprovalAnswer] = []
    for index, item in enumerate(request.items):
        if not isinstance(item, McpApprovalResponseItem) or item.approval_request_id in answered:
            continue
        question = asked.get(item.approval_request_id)
        if question is None:
            raise invalid_request(f"No mcp_approval_request {echoed(item.approval_request_id)} in this "
                                  "conversation", f"input[{index}].approval_request_id")
        answers.append(ApprovalAnswer(approval_request_id=item.approval_request_id, approve=item.approve,
                                      server_label=str(question.get("server_label", "")),
                                      name=str(question.get("name", "")),
                                      arguments=str(question.get("arguments", "")), reason=item.reason))
    return tuple(answers)
