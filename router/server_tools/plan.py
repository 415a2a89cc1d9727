"""Steps: check what a request asks of server-side tools, then make the tools ready before its first turn.

``plan_server_tools`` (after ``translate``, before admission; pure checks, no I/O) reads the dialect's
``ServerToolRequest`` and refuses what cannot be served, in the caller's dialect: server-side tools off on this
deployment (400 ``server_tools_disabled``), a key without ``server_tools`` in its policy (403
``server_tools_not_allowed``; with ``router.auth`` off every caller may), ``web_search`` asked for by name with
no backend configured (400), an MCP server outside ``tools.mcp_allowed_urls`` (400
``mcp_server_not_allowed``, naming ``tools[i].server_url``), a built-in whose name a client tool already uses
(400). Hosted tools a request only offers (Responses' ``web_search`` and ``code_interpreter``) are dropped
instead when they cannot be served, as before. The built-ins are added to the request's tools, and the
``ToolPlan`` is kept on the context.

``prepare_server_tools`` (after admission, before routing: the tools become part of the prompt the prefix
index hashes) lists each MCP server's tools through a toolbox (an ``mcp_list_tools`` event each; a server that
cannot be listed is a 424 ``mcp_list_tools_failed``) unless the conversation lists them already (then neither a
listing nor an event), offers the allowed ones, and runs the calls the client
approved in this request (``mcp_approval_response``: their ``mcp_call`` events open the response, and the model
sees call and result; a denied call is told to the model as refused).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import orjson

from fleetgate.core.mcp_allowlist import url_allowed
from fleetgate.router.canonical.ids import new_item_id
from fleetgate.router.canonical.tools import EMPTY_OBJECT_SCHEMA, TOOL_NAME, check_json_schema
from fleetgate.router.errors import ApiError, ErrorKind, echoed, invalid_request
from fleetgate.router.server_tools.builtin import builtin_tool
from fleetgate.router.server_tools.calls import HeldCall, HostedTool, continuation, server_tool_event, tool_request
from fleetgate.router.server_tools.declared import BuiltinTool, McpServerSpec, ServerToolRequest
from fleetgate.v1 import replica_pb2 as pb
from fleetgate.v1 import toolbox_pb2 as tpb

if TYPE_CHECKING:
    from fleetgate.router.pipeline.context import RequestContext
    from fleetgate.router.state import RouterState


@dataclass
class ToolPlan:
    """The server-side tools of one request."""

    # Name offered to the model -> what it stands for.
    hosted: dict[str, HostedTool] = field(default_factory=dict)
    session_id: str = ""
    max_iterations: int = 8
    declared: ServerToolRequest = field(default_factory=ServerToolRequest)
    # Events shown before the first turn's output: the MCP listings, the approved calls that ran.
    opening: list[pb.GenerateEvent] = field(default_factory=list)


async def plan_server_tools(ctx: RequestContext, state: RouterState) -> None:
    declared = ctx.dialect.server_tools(ctx.parsed, ctx)
    request = ctx.request
    if declared is None or declared.empty or request is None:
        return
    try:
        _plan(ctx, state, declared, request)
    finally:
        _unforce_missing_tool(request)


def _plan(ctx: RequestContext, state: RouterState, declared: ServerToolRequest, request: pb.GenerateRequest) -> None:
    settings = state.config.tools
    explicit = bool(declared.builtins or declared.mcp_servers or declared.approvals)
    if not settings.enabled or state.server_tools is None:
        if explicit:
            raise invalid_request("Server-side tools are not enabled on this deployment", declared.param,
                                  code="server_tools_disabled")
        return
    if state.config.router.auth and not ctx.key_policy.server_tools:
        if explicit:
            raise ApiError(403, ErrorKind.PERMISSION,
                           f"API key {echoed(ctx.key_name)} may not use server-side tools; ask an admin to "
                           "allow them (fleetgate keys update --server-tools)", declared.param,
                           code="server_tools_not_allowed")
        return
    searchable = settings.web_search.backend != "none"
    if "web_search" in declared.builtins and not searchable:
        raise invalid_request("web_search has no backend on this deployment (tools.web_search.backend)",
                              declared.param)
    for server in declared.mcp_servers:
        if not url_allowed(server.url, settings.mcp_allowed_urls):
            raise invalid_request(f"The MCP server {echoed(server.url)} is not allowed on this deployment "
                                  "(tools.mcp_allowed_urls)", f"{server.param}.server_url",
                                  code="mcp_server_not_allowed")
    builtins: list[BuiltinTool] = list(dict.fromkeys(declared.builtins))
    builtins += [b for b in declared.hosted_builtins if b not in builtins and (b != "web_search" or searchable)]
    taken = {tool.name for tool in request.tools}
    plan = ToolPlan(session_id=declared.session_id, max_iterations=settings.max_iterations, declared=declared)
    for name in builtins:
        if name in taken:
            raise invalid_request(f"tools: the tool name {name!r} is taken by a server-side tool; rename the "
                                  "client tool", declared.param)
        request.tools.append(builtin_tool(name))
        plan.hosted[name] = HostedTool(kind=name)
    ctx.tool_plan = plan


async def prepare_server_tools(ctx: RequestContext, state: RouterState) -> None:
    plan, request = ctx.tool_plan, ctx.request
    if plan is None or request is None or state.server_tools is None:
        return
    for server in plan.declared.mcp_servers:
        listed = await _listing(ctx, state, server)
        offered = [tool for tool in listed if server.allowed_tools is None or tool.name in server.allowed_tools]
        taken = {tool.name for tool in request.tools}
        for tool in offered:
            name = tool.name if tool.name not in taken and TOOL_NAME.match(tool.name) else _qualified(server, tool)
            schema = _schema(tool.input_schema_json, f"{server.param} ({tool.name})")
            request.tools.append(pb.Tool(name=name, description=tool.description,
                                         parameters_json=orjson.dumps(schema).decode()))
            plan.hosted[name] = HostedTool(kind="mcp", server=server, mcp_tool=tool.name)
            taken.add(name)
        if server.listed is None:
            plan.opening.append(pb.GenerateEvent(server_tool=pb.ServerToolCall(
                id=new_item_id("mcpl_"), tool="mcp_list_tools", server_label=server.label,
                detail_json=orjson.dumps({"tools": [_listed(tool) for tool in offered]}).decode())))
    await _run_approved(ctx, state, plan)


async def _listing(ctx: RequestContext, state: RouterState, server: McpServerSpec) -> list[tpb.McpTool]:
    """The server's tools: as the conversation lists them, else listed now through a toolbox."""
    if server.listed is not None:
        return list(server.listed)
    assert state.server_tools is not None
    listed = await state.server_tools.list_mcp_tools(tpb.ListMcpToolsRequest(
        request_id=ctx.request_id, key_id=ctx.key_id,
        server=tpb.McpServer(label=server.label, url=server.url, headers=server.headers, transport=server.transport)))
    if listed.error:
        raise ApiError(424, ErrorKind.INVALID_REQUEST,
                       f"Error retrieving tool list from MCP server {echoed(server.label)}: {listed.error}",
                       f"{server.param}.server_url", code="mcp_list_tools_failed",
                       openai_type="external_connector_error")
    return list(listed.tools)


async def _run_approved(ctx: RequestContext, state: RouterState, plan: ToolPlan) -> None:
    """Run the calls the client approved (``mcp_approval_response``) and tell the model of the denied ones."""
    request = ctx.request
    assert request is not None and state.server_tools is not None
    servers = {server.label: server for server in plan.declared.mcp_servers}
    for answer in plan.declared.approvals:
        server = servers.get(answer.server_label)
        if server is None:
            raise invalid_request(f"The approved call names the MCP server {echoed(answer.server_label)}, which "
                                  "is not in tools", "input")
        call = HeldCall(-1, answer.approval_request_id, answer.name, answer.arguments)
        tool = HostedTool(kind="mcp", server=server, mcp_tool=answer.name)
        if answer.approve:
            result = await state.server_tools.run(tool_request(call, tool, request_id=ctx.request_id,
                                                               key_id=ctx.key_id, session_id=plan.session_id))
            shown = server_tool_event(call, tool, result, approval_request_id=answer.approval_request_id)
            plan.opening.append(shown)
        else:
            why = f"The user did not approve this call{': ' + answer.reason if answer.reason else ''}."
            shown = pb.GenerateEvent(server_tool=pb.ServerToolCall(id=call.id, tool="mcp", name=answer.name,
                                                                   output=why, is_error=True))
        request.messages.extend(continuation("", "", [(call, shown.server_tool)]))


def _unforce_missing_tool(request: pb.GenerateRequest) -> None:
    """A choice naming a hosted tool that was not offered (the deployment or the key cannot have it) chooses
    freely instead: the model is not forced to call what it does not have."""
    choice = request.tool_choice
    if choice.mode == pb.ToolChoice.MODE_NAMED and choice.name not in {tool.name for tool in request.tools}:
        request.tool_choice.CopyFrom(pb.ToolChoice(mode=pb.ToolChoice.MODE_AUTO if request.tools
                                                   else pb.ToolChoice.MODE_NONE))


def offered_for_last_turn(request: pb.GenerateRequest, plan: ToolPlan) -> None:
    """The last turn allowed is offered no server-side tool (the model answers with what it has)."""
    kept = [tool for tool in request.tools if tool.name not in plan.hosted]
    del request.tools[:]
    request.tools.extend(kept)
    if not kept:
        request.tool_choice.CopyFrom(pb.ToolChoice(mode=pb.ToolChoice.MODE_NONE))


def _qualified(server: McpServerSpec, tool: tpb.McpTool) -> str:
    """A name for an MCP tool whose own name is taken (or not one a model can call): label and name."""
    return "".join(c if c.isalnum() or c in "_-" else "_" for c in f"{server.label}__{tool.name}")[:128]


def _schema(schema_json: str, where: str) -> dict[str, object]:
    try:
        schema = orjson.loads(schema_json) if schema_json else EMPTY_OBJECT_SCHEMA
    except orjson.JSONDecodeError:
        raise invalid_request(f"{where}: the MCP server's input schema is not JSON") from None
    return check_json_schema(schema, where)


def _listed(tool: tpb.McpTool) -> dict[str, object]:
    return {"name": tool.name, "description": tool.description or None,
            "input_schema": orjson.loads(tool.input_schema_json) if tool.input_schema_json else {},
            "annotations": orjson.loads(tool.annotations_json) if tool.annotations_json else None}
