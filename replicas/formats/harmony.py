"""The gpt-oss prompt format: harmony rendering and parsing with ``openai_harmony``.

Rendering turns a canonical request into harmony token ids:

- a system message with the reasoning effort (``low`` / ``medium`` / ``high``,
  default ``medium``; ``low`` when reasoning is disabled and no effort is given),
  the conversation date and the required channels (analysis, commentary, final);
- a developer message whose ``# Instructions`` are the request's system and
  developer messages (joined by a blank line), whose ``# Tools`` hold the function
  tools in the ``functions`` namespace (left out when the tool choice is ``none``),
  and which ends with a ``# Response Formats`` section for a ``json_schema``
  response format (harmony's documented shape; the library has no API for it);
- user messages; assistant history as analysis (reasoning), commentary (text that
  precedes tool calls, a preamble), ``to=functions.NAME`` json calls, and final
  (text); tool results as messages from ``functions.NAME`` to the assistant.
  Analysis that precedes the last final answer is dropped, as harmony prescribes.

Messages with a recipient (tool calls, tool results) are rendered with the
recipient in the role part of the header, ``<|start|>assistant
to=functions.x<|channel|>commentary json<|message|>``: the shape gpt-oss was
trained on (its chat template, upstream openai-harmony, vLLM's own rendering).
The ``oss-harmony`` fork shipped with vLLM moved it after the channel, which
gpt-oss echoes back as malformed headers.

Parsing feeds the generated token ids to harmony's ``StreamableParser``:
analysis → reasoning deltas; a recipient ``functions.x`` (or a bare name of an
offered tool) → tool call start / argument deltas / end; final, and commentary
without a recipient (a preamble meant for the user, as vLLM treats it) → text
deltas; other recipients (built-in tools we never offer) are dropped. Output the
model wrote without any harmony markup is returned as text at ``close``.

The o200k vocabulary is embedded in the ``openai_harmony`` extension, so the
encoding loads offline (unless ``TIKTOKEN_ENCODINGS_BASE`` points elsewhere).
"""

from __future__ import annotations

import datetime
import enum
import functools
import json
import logging
from collections.abc import Iterable

from openai_harmony import (
    Author,
    DeveloperContent,
    HarmonyEncoding,
    HarmonyEncodingName,
    HarmonyError,
    Message,
    ReasoningEffort,
    RenderOptions,
    Role,
    StreamableParser,
    SystemContent,
    TextContent,
    ToolDescription,
    load_harmony_encoding,
)

from fleetgate.core import events
from fleetgate.core.tool_call_ids import new_tool_call_id
from fleetgate.replicas.formats.base import OutputParser, PromptFormat, RenderedPrompt
from fleetgate.v1 import replica_pb2 as pb

logger = logging.getLogger(__name__)

FUNCTIONS_NAMESPACE = "functions"
_FUNCTION_PREFIX = f"{FUNCTIONS_NAMESPACE}."
_TOOL_CALL_CONTENT_TYPE = "json"
_REASONING_EFFORTS = {"low": ReasoningEffort.LOW, "medium": ReasoningEffort.MEDIUM, "high": ReasoningEffort.HIGH}
_DEFAULT_RESPONSE_FORMAT_NAME = "response"


@functools.cache
def harmony_encoding() -> HarmonyEncoding:
    """The gpt-oss harmony encoding (loaded once per process)."""
    return load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)


@functools.cache
def _special_token(text: str) -> int:
    token: int
    (token,) = harmony_encoding().encode(text, allowed_special={text})
    return token


def _encode_text(text: str) -> list[int]:
    """Token ids of ``text``, with special-token look-alikes encoded as plain text."""
    token_ids: list[int] = harmony_encoding().encode(text, disallowed_special=())
    return token_ids


# --- rendering ---------------------------------------------------------------


class HarmonyFormat(PromptFormat):
    """Prompt format of the gpt-oss models."""

    def __init__(self, *, conversation_start_date: str | None = None) -> None:
        # None: today's date at render time (as vLLM does); tests pin it.
        self._conversation_start_date = conversation_start_date

    def render(self, request: pb.GenerateRequest) -> RenderedPrompt:
        encoding = harmony_encoding()
        if request.HasField("raw_prompt"):
            # A raw gpt-oss prompt is harmony text, so its special tokens are meant as such.
            token_ids = encoding.encode(request.raw_prompt, allowed_special="all")
        else:
            token_ids = self._render_conversation(request)
        return RenderedPrompt(token_ids=token_ids, stop_token_ids=encoding.stop_tokens_for_assistant_actions())

    def new_parser(self, request: pb.GenerateRequest) -> HarmonyOutputParser:
        return HarmonyOutputParser(
            tool_names=frozenset(tool.name for tool in offered_tools(request)),
            emit_reasoning=not reasoning_disabled(request),
        )

    def _render_conversation(self, request: pb.GenerateRequest) -> list[int]:
        tools = offered_tools(request)
        instructions = "\n\n".join(
            message_text(message)
            for message in request.messages
            if message.role in (pb.ROLE_SYSTEM, pb.ROLE_DEVELOPER)
        )
        start_date = self._conversation_start_date or datetime.date.today().isoformat()
        options = RenderOptions(conversation_has_function_tools=bool(tools))

        token_ids = _render_message(system_message(reasoning_effort(request), start_date), options)
        response_format = response_format_section(request.response_format)
        if instructions or tools or response_format:
            token_ids += developer_message_tokens(instructions, tools, response_format)
        for message in drop_superseded_analysis(history_messages(request.messages)):
            token_ids += _render_message(message, options)
        return token_ids + [_special_token("<|start|>"), *_encode_text(Role.ASSISTANT.value)]


def offered_tools(request: pb.GenerateRequest) -> list[pb.Tool]:
    """The tools the model is told about: none when the tool choice is ``none``."""
    if request.tool_choice.mode == pb.ToolChoice.MODE_NONE:
        return []
    return list(request.tools)


def reasoning_disabled(request: pb.GenerateRequest) -> bool:
    """gpt-oss always reasons; a request that disables reasoning gets low effort and no reasoning events."""
    return request.HasField("enable_reasoning") and not request.enable_reasoning


def reasoning_effort(request: pb.GenerateRequest) -> ReasoningEffort:
    effort = request.reasoning_effort.lower()
    if not effort:
        return ReasoningEffort.LOW if reasoning_disabled(request) else ReasoningEffort.MEDIUM
    if effort not in _REASONING_EFFORTS:
        raise ValueError(f"reasoning effort {effort!r} is not one of {', '.join(_REASONING_EFFORTS)}")
    return _REASONING_EFFORTS[effort]


def system_message(effort: ReasoningEffort, start_date: str) -> Message:
    content = (
        SystemContent.new()
        .with_reasoning_effort(effort)
        .with_conversation_start_date(start_date)
        .with_required_channels(["analysis", "commentary", "final"])
    )
    return Message.from_role_and_content(Role.SYSTEM, content)


def tool_description(tool: pb.Tool) -> ToolDescription:
    parameters = json.loads(tool.parameters_json) if tool.parameters_json else None
    return ToolDescription.new(tool.name, tool.description, parameters=parameters)


def response_format_section(response_format: pb.ResponseFormat) -> str:
    """Harmony's ``# Response Formats`` section for a json_schema format ("" otherwise)."""
    if response_format.kind != pb.ResponseFormat.KIND_JSON_SCHEMA or not response_format.schema_json:
        return ""
    schema = json.dumps(json.loads(response_format.schema_json), separators=(",", ":"))
    name = response_format.name or _DEFAULT_RESPONSE_FORMAT_NAME
    return f"# Response Formats\n\n## {name}\n\n{schema}"


def developer_message_tokens(instructions: str, tools: list[pb.Tool], response_format: str) -> list[int]:
    """The developer message: instructions, function tools, then the response format section."""
    content = DeveloperContent.new()
    if instructions:
        content = content.with_instructions(instructions)
    if tools:
        content = content.with_function_tools([tool_description(tool) for tool in tools])
    token_ids: list[int] = harmony_encoding().render(Message.from_role_and_content(Role.DEVELOPER, content))
    if not response_format:
        return token_ids
    # The library renders instructions and tools only; the section goes last, before <|end|>.
    end = token_ids.pop()
    assert end == _special_token("<|end|>"), "a rendered developer message ends with <|end|>"
    separator = "\n\n" if instructions or tools else ""
    return token_ids + _encode_text(separator + response_format) + [end]


def message_text(message: pb.Message) -> str:
    """The text of a canonical message; images are refused (gpt-oss reads text only)."""
    texts: list[str] = []
    for part in message.content:
        if part.WhichOneof("part") == "image_url":
            raise ValueError("gpt-oss models accept text only, not images")
        texts.append(part.text)
    return "\n".join(texts)


def history_messages(messages: Iterable[pb.Message]) -> list[Message]:
    """Harmony messages for the user, assistant and tool turns of a canonical conversation."""
    messages = list(messages)
    tool_names = {call.id: call.name for message in messages for call in message.tool_calls}
    harmony: list[Message] = []
    for message in messages:
        if message.role == pb.ROLE_USER:
            harmony.append(Message.from_role_and_content(Role.USER, message_text(message)))
        elif message.role == pb.ROLE_ASSISTANT:
            harmony.extend(assistant_messages(message))
        elif message.role == pb.ROLE_TOOL:
            name = tool_names.get(message.tool_call_id) or message.name
            if not name:
                raise ValueError(f"tool result {message.tool_call_id!r} answers no tool call of the conversation")
            author = Author.new(Role.TOOL, _FUNCTION_PREFIX + name)
            harmony.append(
                Message.from_author_and_content(author, message_text(message))
                .with_channel("commentary")
                .with_recipient(Role.ASSISTANT.value)
            )
    return harmony


def assistant_messages(message: pb.Message) -> list[Message]:
    """An assistant turn: analysis, then text (a preamble before tool calls, else final), then calls."""
    harmony: list[Message] = []
    if message.reasoning:
        harmony.append(Message.from_role_and_content(Role.ASSISTANT, message.reasoning).with_channel("analysis"))
    text = message_text(message)
    if text:
        channel = "commentary" if message.tool_calls else "final"
        harmony.append(Message.from_role_and_content(Role.ASSISTANT, text).with_channel(channel))
    for call in message.tool_calls:
        harmony.append(
            Message.from_role_and_content(Role.ASSISTANT, call.arguments)
            .with_channel("commentary")
            .with_recipient(_FUNCTION_PREFIX + call.name)
            .with_content_type(_TOOL_CALL_CONTENT_TYPE)
        )
    return harmony


def drop_superseded_analysis(messages: list[Message]) -> list[Message]:
    """Drop analysis that precedes the last final answer (harmony keeps only the current chain of thought)."""
    finals = [i for i, message in enumerate(messages) if message.channel == "final"]
    last_final = finals[-1] if finals else -1
    return [message for i, message in enumerate(messages) if i > last_final or message.channel != "analysis"]


def _render_message(message: Message, options: RenderOptions) -> list[int]:
    if message.recipient is None:
        token_ids: list[int] = harmony_encoding().render(message, options)
        return token_ids
    return _render_with_recipient_in_role(message)


def _render_with_recipient_in_role(message: Message) -> list[int]:
    """``<|start|>{author} to={recipient}<|channel|>{channel}[ {type}]<|message|>{text}{<|call|> or <|end|>}``."""
    author = message.author.name if message.author.role == Role.TOOL else message.author.role.value
    header = _encode_text(f"{author} to={message.recipient}")
    if message.channel is not None:
        header += [_special_token("<|channel|>"), *_encode_text(message.channel)]
    if message.content_type is not None:
        header += _encode_text(f" {message.content_type}")
    text = "".join(content.text for content in message.content if isinstance(content, TextContent))
    end = _special_token("<|call|>" if message.author.role == Role.ASSISTANT else "<|end|>")
    return [_special_token("<|start|>"), *header, _special_token("<|message|>"), *_encode_text(text), end]


# --- parsing -------------------------------------------------------------------


class _Route(enum.Enum):
    REASONING = enum.auto()
    TEXT = enum.auto()
    TOOL_CALL = enum.auto()
    DROPPED = enum.auto()


class HarmonyOutputParser(OutputParser):
    """Canonical events from gpt-oss completion tokens, one harmony message at a time."""

    def __init__(self, tool_names: frozenset[str], emit_reasoning: bool = True) -> None:
        encoding = harmony_encoding()
        self._encoding = encoding
        self._parser = StreamableParser(encoding, role=Role.ASSISTANT)
        self._tool_names = tool_names
        self._emit_reasoning = emit_reasoning
        self._message_token = _special_token("<|message|>")
        self._end_tokens = frozenset(_special_token(t) for t in ("<|end|>", "<|call|>", "<|return|>"))
        self._route: _Route | None = None  # set while inside a message's content
        self._tool_calls = 0
        self._reasoning_tokens = 0
        self._unended_tokens: list[int] = []  # tokens since the last message end
        self._closed = False

    @property
    def made_tool_calls(self) -> bool:
        return self._tool_calls > 0

    @property
    def reasoning_tokens(self) -> int:
        return self._reasoning_tokens

    def feed(self, delta_text: str, delta_token_ids: list[int]) -> list[pb.GenerateEvent]:
        # Harmony is parsed from token ids; delta_text carries nothing more.
        out: list[pb.GenerateEvent] = []
        for token in delta_token_ids:
            out.extend(self._process(token))
        return out

    def close(self) -> list[pb.GenerateEvent]:
        if self._closed:
            return []
        self._closed = True
        try:
            self._parser.process_eos()
        except HarmonyError:
            # The output stopped inside a header: truncated markup, or text with no markup at all.
            return self._unformatted_text()
        return self._end_message()

    def _process(self, token: int) -> list[pb.GenerateEvent]:
        self._unended_tokens.append(token)
        try:
            self._parser.process(token)
        except HarmonyError as exc:
            logger.debug("skipping a token harmony cannot place: %s", exc)
            return []
        if token in self._end_tokens:
            self._unended_tokens.clear()
            return self._end_message()
        if token == self._message_token:
            return self._begin_message()
        if self._route is None:
            return []
        if self._route is _Route.REASONING and not self._encoding.is_special_token(token):
            self._reasoning_tokens += 1
        return self._content_events(self._parser.last_content_delta or "")

    def _begin_message(self) -> list[pb.GenerateEvent]:
        name = self._called_function(self._parser.current_recipient)
        if name is not None:
            self._route = _Route.TOOL_CALL
            self._tool_calls += 1
            return [events.tool_call_start(self._tool_calls - 1, new_tool_call_id(), name)]
        if self._parser.current_recipient is not None:
            self._route = _Route.DROPPED
        elif self._parser.current_channel == "analysis":
            self._route = _Route.REASONING
        else:
            self._route = _Route.TEXT
        return []

    def _called_function(self, recipient: str | None) -> str | None:
        if recipient is None:
            return None
        if recipient.startswith(_FUNCTION_PREFIX) and len(recipient) > len(_FUNCTION_PREFIX):
            return recipient.removeprefix(_FUNCTION_PREFIX)
        return recipient if recipient in self._tool_names else None

    def _content_events(self, delta: str) -> list[pb.GenerateEvent]:
        if not delta:
            return []
        if self._route is _Route.TOOL_CALL:
            return [events.tool_call_delta(self._tool_calls - 1, delta)]
        if self._route is _Route.TEXT:
            return [events.text(delta)]
        if self._route is _Route.REASONING and self._emit_reasoning:
            return [events.reasoning(delta)]
        return []

    def _end_message(self) -> list[pb.GenerateEvent]:
        route, self._route = self._route, None
        return [events.tool_call_end(self._tool_calls - 1)] if route is _Route.TOOL_CALL else []

    def _unformatted_text(self) -> list[pb.GenerateEvent]:
        tokens = self._unended_tokens
        if not tokens or any(self._encoding.is_special_token(token) for token in tokens):
            return []
        return [events.text(self._encoding.decode(tokens))]
