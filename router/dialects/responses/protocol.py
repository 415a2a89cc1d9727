"""Wire models of the OpenAI Responses API request (``POST /v1/responses``).

Pydantic v2 models that accept what the OpenAI SDK and coding agents send and
tolerate what fleetgate does not serve: unknown top-level fields are kept and
ignored, unknown input item types and content part types parse into
``UnknownItem`` / ``UnknownPart`` (dropped later), and tools other than flat
function tools parse into ``OtherTool`` (ignored). The same item models parse
stored conversation items (which carry ids and statuses), so a request's input
and a stored response's history go through one translation path.

Only the request side lives here: response objects and stream events are the
``openai.types.responses`` models themselves (see ``output.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

from fleetgate.router.canonical.bounds import NestedJson, TokenLimit


class _Wire(BaseModel):
    """Base of every wire model: unknown fields are accepted and kept (stored with the conversation, so each
    at most ``router.canonical.bounds.MAX_JSON_DEPTH`` levels deep)."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, NestedJson] = Field(init=False)


def _type_of(value: Any) -> Any:
    return value.get("type") if isinstance(value, dict) else getattr(value, "type", None)


def tolerant_union(
    known: dict[str, type[BaseModel]], fallback: type[BaseModel], type_of: Callable[[Any], Any] = _type_of
) -> Any:
    """A union discriminated by ``type``: known types parse into their model, any other into ``fallback``."""

    def discriminate(value: Any) -> str:
        kind = type_of(value)
        return kind if kind in known else "*"

    members = tuple(Annotated[model, Tag(kind)] for kind, model in known.items())
    return Annotated[Union[(*members, Annotated[fallback, Tag("*")])], Discriminator(discriminate)]


# ---------------------------------------------------------------- content parts


class InputText(_Wire):
    type: Literal["input_text"]
    text: str


class InputImage(_Wire):
    type: Literal["input_image"]
    image_url: str | None = None
    file_id: str | None = None
    detail: str = "auto"


class InputFile(_Wire):
    type: Literal["input_file"]


class OutputText(_Wire):
    type: Literal["output_text"]
    text: str
    annotations: list[NestedJson] = Field(default_factory=list)


class Refusal(_Wire):
    type: Literal["refusal"]
    refusal: str


class UnknownPart(_Wire):
    """A content part type fleetgate does not know; tolerated and dropped."""

    type: str = ""


if TYPE_CHECKING:  # what the tolerant union parses into, for the type checker
    ContentPart: TypeAlias = InputText | InputImage | InputFile | OutputText | Refusal | UnknownPart
else:
    ContentPart = tolerant_union(
        {"input_text": InputText, "input_image": InputImage, "input_file": InputFile, "output_text": OutputText,
         "refusal": Refusal},
        UnknownPart,
    )


# ---------------------------------------------------------------- input items


class MessageItem(_Wire):
    """A message; ``type`` may be omitted (the SDK's EasyInputMessage)."""

    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[ContentPart]
    id: str | None = None
    status: str | None = None


class FunctionCallItem(_Wire):
    type: Literal["function_call"]
    call_id: str
    name: str
    arguments: str = ""
    # The namespace tool the function belongs to (``NamespaceTool``).
    namespace: str | None = None
    id: str | None = None
    status: str | None = None


class FunctionCallOutputItem(_Wire):
    """A tool's output. Codex sends outputs of its namespace tools without a ``call_id``, naming the
    tool (``name``, ``namespace``) instead."""

    type: Literal["function_call_output"]
    call_id: str | None = None
    output: str | list[ContentPart]
    name: str | None = None
    namespace: str | None = None
    id: str | None = None
    status: str | None = None


class ReasoningText(_Wire):
    type: str = "reasoning_text"
    text: str


class ReasoningItem(_Wire):
    type: Literal["reasoning"]
    id: str | None = None
    summary: list[ReasoningText] = Field(default_factory=list)
    content: list[ReasoningText] | None = None
    encrypted_content: str | None = None
    status: str | None = None

    @property
    def text(self) -> str:
        """The reasoning text, or its summary when only a summary was kept."""
        parts = self.content if self.content else self.summary
        return "".join(part.text for part in parts)


class CompactionItem(_Wire):
    """What ``/v1/responses/compact`` made of a conversation: its summary, sealed (``router.sealing``).

    ``summary`` is the opened text: filled in by the route before translation (a client's own value
    is replaced), and kept in the response store with the item."""

    type: Literal["compaction"]
    encrypted_content: str
    id: str | None = None
    status: str | None = None
    summary: str | None = None


class McpListToolsItem(_Wire):
    """The tools an MCP server listed (an earlier response's output); not shown to the model as a message: while
    it is in the conversation, the request's ``mcp`` tool of that ``server_label`` offers these tools and the
    server is not listed again (OpenAI's behaviour; an item with an ``error`` does not count)."""

    type: Literal["mcp_list_tools"]
    server_label: str = ""
    tools: list[NestedJson] = Field(default_factory=list)
    id: str | None = None
    status: str | None = None
    error: str | None = None


class McpCallItem(_Wire):
    """A call of an MCP server's tool that ran: the model sees the call and its output (or error)."""

    type: Literal["mcp_call"]
    server_label: str = ""
    name: str
    arguments: str = ""
    output: str | None = None
    error: NestedJson | None = None
    id: str | None = None
    status: str | None = None


class McpApprovalRequestItem(_Wire):
    """A call waiting for the client's approval (answered by an ``McpApprovalResponseItem``)."""

    type: Literal["mcp_approval_request"]
    server_label: str
    name: str
    arguments: str = ""
    id: str | None = None
    status: str | None = None


class McpApprovalResponseItem(_Wire):
    type: Literal["mcp_approval_response"]
    approval_request_id: str
    approve: bool
    reason: str | None = None
    id: str | None = None
    status: str | None = None


class CodeInterpreterCallItem(_Wire):
    """Python the server ran (an earlier response's ``code_interpreter_call``): the model sees code and logs."""

    type: Literal["code_interpreter_call"]
    code: str | None = None
    outputs: list[NestedJson] | None = None
    container_id: str = ""
    id: str | None = None
    status: str | None = None


class WebSearchCallItem(_Wire):
    """A search the server ran (an earlier response's ``web_search_call``): kept, not shown to the model."""

    type: Literal["web_search_call"]
    action: NestedJson | None = None
    id: str | None = None
    status: str | None = None


class UnknownItem(_Wire):
    """An input item type fleetgate does not serve (file search, references...); dropped."""

    type: str = ""


def _item_type(value: Any) -> Any:
    """An item's ``type``; a message may omit it (it has a ``role``)."""
    return _type_of(value) or ("message" if isinstance(value, dict) and "role" in value else None)


if TYPE_CHECKING:
    InputItem: TypeAlias = (
        MessageItem | FunctionCallItem | FunctionCallOutputItem | ReasoningItem | CompactionItem | McpListToolsItem
        | McpCallItem | McpApprovalRequestItem | McpApprovalResponseItem | CodeInterpreterCallItem
        | WebSearchCallItem | UnknownItem
    )
else:
    InputItem = tolerant_union(
        {"message": MessageItem, "function_call": FunctionCallItem, "function_call_output": FunctionCallOutputItem,
         "reasoning": ReasoningItem, "compaction": CompactionItem, "mcp_list_tools": McpListToolsItem,
         "mcp_call": McpCallItem, "mcp_approval_request": McpApprovalRequestItem,
         "mcp_approval_response": McpApprovalResponseItem, "code_interpreter_call": CodeInterpreterCallItem,
         "web_search_call": WebSearchCallItem},
        UnknownItem,
        type_of=_item_type,
    )


# ---------------------------------------------------------------- tools


class FunctionTool(_Wire):
    """A flat function tool: ``{"type": "function", "name": ..., "parameters": {...}}``."""

    type: Literal["function"]
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class OtherTool(_Wire):
    """A hosted tool fleetgate does not run (file_search, image_generation...): accepted, not offered."""

    type: str = ""


class ToolNames(_Wire):
    tool_names: list[str] = Field(default_factory=list)


class ApprovalFilter(_Wire):
    always: ToolNames | None = None
    never: ToolNames | None = None


class McpTool(_Wire):
    """A remote MCP server (``router.server_tools``): its tools are listed, offered and run by the server."""

    type: Literal["mcp"]
    server_label: str = Field(min_length=1, max_length=64)
    server_url: str | None = Field(default=None, max_length=2048)
    connector_id: str | None = None
    headers: dict[str, str] | None = None
    authorization: str | None = None
    allowed_tools: list[str] | ToolNames | None = None
    require_approval: Literal["always", "never"] | ApprovalFilter | None = None
    server_description: str | None = None


class WebSearchTool(_Wire):
    """The hosted web search: run by the server through its configured backend, when it has one."""

    type: Literal["web_search", "web_search_preview", "web_search_2025_08_26", "web_search_preview_2025_03_11"]


class CodeInterpreterTool(_Wire):
    """The hosted code interpreter: python in the server's sandbox (``router.server_tools``)."""

    type: Literal["code_interpreter"]
    container: str | dict[str, Any] | None = None


class NamespaceTool(_Wire):
    """Function tools grouped under a name (Codex's ``multi_agent_v1``, ...): offered to the model as
    ``NAMESPACE.FUNCTION`` and called back with ``namespace`` and ``name`` apart."""

    type: Literal["namespace"]
    name: str
    description: str = ""
    tools: list[Annotated[FunctionTool | OtherTool, Field(union_mode="left_to_right")]] = Field(default_factory=list)


_WEB_SEARCH_TYPES = ("web_search", "web_search_preview", "web_search_2025_08_26", "web_search_preview_2025_03_11")

if TYPE_CHECKING:
    ToolSpec: TypeAlias = FunctionTool | NamespaceTool | McpTool | WebSearchTool | CodeInterpreterTool | OtherTool
else:
    ToolSpec = tolerant_union({"function": FunctionTool, "namespace": NamespaceTool, "mcp": McpTool,
                               "code_interpreter": CodeInterpreterTool,
                               **{kind: WebSearchTool for kind in _WEB_SEARCH_TYPES}}, OtherTool)


class FunctionToolChoice(_Wire):
    type: Literal["function"]
    name: str


class OtherToolChoice(_Wire):
    """allowed_tools, hosted tool types...: treated as ``auto``."""

    type: str = ""


def _tool_choice_tag(value: Any) -> str:
    if isinstance(value, str):
        return "mode"
    return "function" if _type_of(value) == "function" else "other"


ToolChoice = Annotated[
    Annotated[Literal["auto", "none", "required"], Tag("mode")]
    | Annotated[FunctionToolChoice, Tag("function")]
    | Annotated[OtherToolChoice, Tag("other")],
    Discriminator(_tool_choice_tag),
]


# ---------------------------------------------------------------- text format and reasoning


class TextFormat(_Wire):
    """``text.format``: ``text``, ``json_object`` or ``json_schema`` (with name and schema)."""

    type: Literal["text", "json_object", "json_schema"] = "text"
    name: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    description: str | None = None
    strict: bool | None = None


class TextConfig(_Wire):
    format: TextFormat | None = None
    verbosity: str | None = None


class ReasoningConfig(_Wire):
    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"] | None = None
    summary: str | None = None


# ---------------------------------------------------------------- the request


class ResponsesRequest(_Wire):
    """The body of ``POST /v1/responses``."""

    model: str
    input: str | list[InputItem] = Field(default_factory=list)
    instructions: str | None = None
    tools: list[ToolSpec] = Field(default_factory=list)
    tool_choice: ToolChoice = "auto"
    parallel_tool_calls: bool = True
    text: TextConfig | None = None
    reasoning: ReasoningConfig | None = None
    max_output_tokens: TokenLimit | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, ge=0.0, le=1.0)
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    # Echoed; fleetgate returns no log probabilities.
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    # Echoed: it bounds calls of hosted tools (tools.max_iterations bounds the server's tool loop).
    max_tool_calls: int | None = Field(default=None, ge=1)
    # The session whose python state and working directory server-side tools keep (default: prompt_cache_key).
    session_id: str | None = Field(default=None, max_length=256)
    # Accepted; one tier serves every request (the response says "default").
    service_tier: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    store: bool = True
    previous_response_id: str | None = None
    metadata: dict[str, str] | None = None
    stream: bool = False
    include: list[str] | None = None
    user: str | None = None
    truncation: Literal["auto", "disabled"] | None = None
    # LM Studio's field: the model's idle TTL in seconds (router.elastic), for models that scale.
    ttl: int | None = Field(None, ge=1)

    @property
    def function_tools(self) -> list[FunctionTool]:
        return [tool for tool in self.tools if isinstance(tool, FunctionTool)]

    @property
    def namespaces(self) -> frozenset[str]:
        """Names of the namespace tools offered (how a called function's name splits back)."""
        return frozenset(tool.name for tool in self.tools if isinstance(tool, NamespaceTool))

    @property
    def items(self) -> list[InputItem]:
        """``input`` as a list of items (a string is one user message)."""
        if isinstance(self.input, str):
            return [MessageItem(role="user", content=self.input)]
        return list(self.input)
