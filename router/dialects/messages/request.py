"""Anthropic Messages request → canonical ``pb.GenerateRequest`` (pure translation).

Mapping, field by field:

- ``system`` (a string or text blocks; ``cache_control`` ignored) → one SYSTEM message, Claude Code's
  leading billing header block normalised, dropped or kept (``billing_header.py``);
- a ``role: "system"`` turn inside ``messages`` (the ``mid-conversation-system`` beta)
  → a SYSTEM message at its place in the conversation (how a replica renders a
  system message after the first turn is the prompt format's business);
- user ``text`` / ``image`` blocks → a USER message (base64 images become data URLs);
  each ``tool_result`` block → a TOOL message (``tool_call_id``, ``is_error``, its
  string or text / image content; ``name`` looked up from the matching ``tool_use``);
- assistant ``text`` → content, ``thinking`` → ``reasoning`` (replayed),
  ``redacted_thinking`` → dropped (it carries no readable text), ``tool_use`` and
  ``server_tool_use`` → ``tool_calls`` with the ``input`` object JSON-encoded; a server-side
  tool's result block (``code_execution_tool_result``, ...) → a TOOL message after them;
- Anthropic's server tools (``web_search_…``, ``code_execution_…``) → not client tools: the server runs them
  (``anthropic_server_tools``, ``router.server_tools``) or, when it cannot, they are not offered;
- ``tool_choice`` auto / any / tool / none → AUTO / REQUIRED / NAMED / NONE;
  ``disable_parallel_tool_use`` → ``parallel_tool_calls = false``;
- ``max_tokens``, ``stop_sequences``, ``temperature``, ``top_p``, ``top_k`` → sampling;
- ``output_config.format`` (json_schema) → response format JSON schema;
- ``thinking`` → reasoning, see ``reasoning_from_thinking``.

``metadata.user_id`` is not forwarded: the canonical caller carries the API key
id, set by the router core, never a client-chosen identity. It is one of the
request's session hints (``router.canonical.session_hints``).
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from fleetgate.router.canonical import tools as canonical_tools
from fleetgate.router.canonical.bounds import check_depth
from fleetgate.router.canonical.content import data_url, image_part, text_part
from fleetgate.router.canonical.reasoning import canonical_effort
from fleetgate.router.canonical.tool_results import ToolCallNames, tool_result_message
from fleetgate.router.dialects.messages import protocol as wire
from fleetgate.router.dialects.messages.billing_header import DEFAULT_BILLING_HEADER, BillingHeaderMode, stable_system
from fleetgate.router.server_tools.declared import BuiltinTool
from fleetgate.v1 import replica_pb2 as pb

# Thinking budget (tokens) → reasoning effort. Anthropic clients pick budgets, the
# canonical request carries an effort: below LOW_BUDGET_MAX is "low" (the 1024
# minimum, Claude Code's "think" ≈ 4000), up to MEDIUM_BUDGET_MAX "medium" ("think
# hard" ≈ 10000), above it "high" ("ultrathink" ≈ 32000).
LOW_BUDGET_MAX = 4096
MEDIUM_BUDGET_MAX = 16384


def effort_from_budget(budget_tokens: int) -> str:
    """The canonical reasoning effort for an Anthropic thinking budget."""
    if budget_tokens < LOW_BUDGET_MAX:
        return "low"
    if budget_tokens < MEDIUM_BUDGET_MAX:
        return "medium"
    return "high"


def reasoning_from_thinking(
    thinking: wire.ThinkingEnabled | wire.ThinkingAdaptive | wire.ThinkingDisabled | None,
    output_config: wire.OutputConfig | None,
) -> tuple[bool | None, str]:
    """``(enable_reasoning, reasoning_effort)`` for a request.

    ``disabled`` → (False, ""); ``enabled`` → (True, effort of the budget);
    ``adaptive`` → (True, ""); absent → (None, ""), the model's own default.
    An explicit ``output_config.effort`` overrides the effort derived from the budget.
    """
    enable: bool | None = None
    effort = ""
    if isinstance(thinking, wire.ThinkingDisabled):
        return False, ""
    if isinstance(thinking, wire.ThinkingEnabled):
        enable, effort = True, effort_from_budget(thinking.budget_tokens)
    elif isinstance(thinking, wire.ThinkingAdaptive):
        enable = True
    if output_config is not None and output_config.effort is not None:
        effort = canonical_effort(output_config.effort)
    return enable, effort


def image_url(block: wire.ImageBlock) -> str:
    source = block.source
    if isinstance(source, wire.Base64ImageSource):
        return data_url(source.media_type, source.data)
    return source.url


def content_parts(blocks: str | Sequence[wire.TextBlock | wire.ImageBlock], param: str) -> list[pb.ContentPart]:
    """Canonical parts of a string or of text / image blocks (``param``: where they are, for a 400)."""
    if isinstance(blocks, str):
        return [text_part(blocks)]
    return [
        text_part(b.text) if isinstance(b, wire.TextBlock) else image_part(image_url(b), f"{param}[{i}].source")
        for i, b in enumerate(blocks)
    ]


def system_message(system: str | list[wire.TextBlock], param: str = "system") -> pb.Message:
    return pb.Message(role=pb.ROLE_SYSTEM, content=content_parts(system, param))


def _assistant_messages(message: wire.AssistantMessage, param: str) -> list[pb.Message]:
    """An assistant turn; a server-side tool result in it ends the ASSISTANT message so far, becomes a TOOL
    message, and the turn goes on in a new ASSISTANT message."""
    out = pb.Message(role=pb.ROLE_ASSISTANT)
    if isinstance(message.content, str):
        out.content.append(text_part(message.content))
        return [out]
    messages: list[pb.Message] = []
    reasoning: list[str] = []
    for i, block in enumerate(message.content):
        if isinstance(block, wire.TextBlock):
            out.content.append(text_part(block.text))
        elif isinstance(block, wire.ThinkingBlock):
            reasoning.append(block.thinking)
        elif isinstance(block, (wire.ToolUseBlock, wire.ServerToolUseBlock)):
            check_depth(block.input, f"{param}.content[{i}].input")
            out.tool_calls.append(
                pb.ToolCall(id=block.id, name=block.name, arguments=orjson.dumps(block.input).decode())
            )
        elif isinstance(block, wire.ServerToolResultBlock):
            out.reasoning = "".join(reasoning)
            reasoning = []
            messages.append(out)
            check_depth(block.content, f"{param}.content[{i}].content")
            messages.append(pb.Message(role=pb.ROLE_TOOL, tool_call_id=block.tool_use_id,
                                       content=[text_part(_server_result_text(block.content))]))
            out = pb.Message(role=pb.ROLE_ASSISTANT)
    out.reasoning = "".join(reasoning)
    if out.content or out.tool_calls or out.reasoning or not messages:
        messages.append(out)
    return messages


def _server_result_text(content: object) -> str:
    """What the model saw of a server-side tool's result: the run's output, or the results as JSON."""
    if isinstance(content, dict) and ("stdout" in content or "stderr" in content):
        return "".join(str(content.get(key) or "") for key in ("stdout", "stderr"))
    return orjson.dumps(content).decode()


def _user_messages(message: wire.UserMessage, tool_names: ToolCallNames, param: str) -> list[pb.Message]:
    """A user turn → TOOL messages (one per tool_result) and USER messages, in order."""
    if isinstance(message.content, str):
        return [pb.Message(role=pb.ROLE_USER, content=[text_part(message.content)])]
    out: list[pb.Message] = []
    user = pb.Message(role=pb.ROLE_USER)
    for i, block in enumerate(message.content):
        where = f"{param}.content[{i}]"
        if isinstance(block, wire.ToolResultBlock):
            if user.content:
                out.append(user)
                user = pb.Message(role=pb.ROLE_USER)
            content = content_parts(block.content, f"{where}.content")
            out.append(tool_result_message(block.tool_use_id, tool_names.name(block.tool_use_id), content,
                                           is_error=block.is_error))
        elif isinstance(block, wire.TextBlock):
            user.content.append(text_part(block.text))
        else:
            user.content.append(image_part(image_url(block), f"{where}.source"))
    if user.content:
        out.append(user)
    return out


def canonical_messages(
    request: wire.CountTokensRequest, billing_header: BillingHeaderMode = DEFAULT_BILLING_HEADER
) -> list[pb.Message]:
    """The conversation as canonical messages: system first (its billing header per ``billing_header``), then
    the turns in order."""
    out: list[pb.Message] = []
    system = stable_system(request.system, billing_header)
    if system:
        out.append(system_message(system))
    tool_names = ToolCallNames()
    for i, message in enumerate(request.messages):
        if isinstance(message, wire.AssistantMessage):
            for converted in _assistant_messages(message, f"messages[{i}]"):
                tool_names.remember(converted.tool_calls)
                out.append(converted)
        elif isinstance(message, wire.SystemMessage):
            out.append(system_message(message.content, f"messages[{i}].content"))
        else:
            out.extend(_user_messages(message, tool_names, f"messages[{i}]"))
    return out


def tools_and_choice(request: wire.CountTokensRequest) -> tuple[list[pb.Tool], pb.ToolChoice, bool]:
    """Validated canonical tools, tool choice, and ``parallel_tool_calls`` (true unless disabled)."""
    tools = [
        canonical_tools.canonical_tool(t.name, t.description, t.input_schema, f"tools[{i}]")
        for i, t in enumerate(request.tools or []) if isinstance(t, wire.Tool)  # server tools: server_tools()
    ]
    canonical_tools.check_unique_names(tools, "tools")
    choice = request.tool_choice
    if isinstance(choice, wire.ToolChoiceTool):
        canonical = canonical_tools.named_tool_choice(choice.name)
    else:
        canonical = canonical_tools.tool_choice_mode(choice.type if choice is not None else None)
    server_tools = request.server_tool_names if isinstance(request, wire.MessagesRequest) else ()
    server_tools += tuple(t.name for t in request.tools or [] if isinstance(t, wire.ServerTool) and t.name)
    canonical_tools.check_tool_choice(canonical, tools, "tool_choice", server_tools)
    parallel = not getattr(choice, "disable_parallel_tool_use", False)
    return tools, canonical, parallel


def anthropic_server_tools(tools: Sequence[wire.Tool | wire.ServerTool]) -> tuple[BuiltinTool, ...]:
    """The built-ins Anthropic's server tools in ``tools`` stand for: ``web_search_*`` is web_search,
    ``code_execution_*`` python and bash (``router.server_tools``)."""
    wanted: list[BuiltinTool] = []
    for tool in tools:
        if isinstance(tool, wire.ServerTool):
            wanted += ["web_search"] if tool.type.startswith("web_search_") else ["python", "bash"]
    return tuple(dict.fromkeys(wanted))


def response_format(output_config: wire.OutputConfig | None) -> pb.ResponseFormat:
    if output_config is None or output_config.format is None:
        return canonical_tools.TEXT_FORMAT
    return canonical_tools.canonical_json_schema_format(
        None, output_config.format.schema_, "output_config.format.schema"
    )


def prompt_request(
    request: wire.CountTokensRequest, billing_header: BillingHeaderMode = DEFAULT_BILLING_HEADER
) -> pb.GenerateRequest:
    """Everything that shapes the rendered prompt (what ``count_tokens`` counts); ``billing_header`` is
    ``router.claude_code_billing_header``.

    ``request_id`` and ``caller`` are left for the router core to fill in.
    """
    tools, tool_choice, parallel = tools_and_choice(request)
    enable_reasoning, effort = reasoning_from_thinking(request.thinking, request.output_config)
    out = pb.GenerateRequest(
        model=request.model,
        messages=canonical_messages(request, billing_header),
        tools=tools,
        tool_choice=tool_choice,
        parallel_tool_calls=parallel,
        response_format=response_format(request.output_config),
        reasoning_effort=effort,
    )
    if enable_reasoning is not None:
        out.enable_reasoning = enable_reasoning
    return out


def sampling(request: wire.MessagesRequest) -> pb.Sampling:
    out = pb.Sampling(max_tokens=request.max_tokens, stop=request.stop_sequences or [])
    if request.temperature is not None:
        out.temperature = request.temperature
    if request.top_p is not None:
        out.top_p = request.top_p
    if request.top_k is not None:
        out.top_k = request.top_k
    return out


def generate_request(
    request: wire.MessagesRequest, billing_header: BillingHeaderMode = DEFAULT_BILLING_HEADER
) -> pb.GenerateRequest:
    """The canonical request for ``POST /v1/messages`` (``billing_header``: ``router.claude_code_billing_header``)."""
    out = prompt_request(request, billing_header)
    out.sampling.CopyFrom(sampling(request))
    return out
