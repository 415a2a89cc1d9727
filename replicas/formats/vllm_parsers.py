"""Model output → canonical events with vLLM's own reasoning and tool-call parsers.

The parsers are the classes ``--reasoning-parser`` / ``--tool-call-parser`` name
in vLLM (``ReasoningParserManager`` / ``ToolParserManager``), composed by vLLM's
``ParserManager`` into one ``Parser`` that separates reasoning, content and tool
calls as text streams in. Its ``DeltaMessage`` pieces become canonical events.
A model with neither parser configured gets :class:`PlainTextOutput`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fleetgate.core import events
from fleetgate.replicas.formats.base import OutputParser
from fleetgate.replicas.formats.openai_chat import chat_messages, chat_tool_choice, chat_tools
from fleetgate.replicas.formats.tool_call_events import ToolCallEvents
from fleetgate.v1 import replica_pb2 as pb

if TYPE_CHECKING:
    from vllm.entrypoints.generate.base.protocol import DeltaMessage
    from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
    from vllm.parser.abstract_parser import Parser
    from vllm.tokenizers import TokenizerLike


def parser_class(
    reasoning_parser: str | None, tool_parser: str | None, tokenizer: TokenizerLike
) -> type[Parser] | None:
    """vLLM's composed parser class for the configured parser names (None when neither is set)."""
    if not reasoning_parser and not tool_parser:
        return None
    from vllm.parser import ParserManager

    parser: type[Parser] = ParserManager.get_parser(
        tool_parser_name=tool_parser,
        reasoning_parser_name=reasoning_parser,
        enable_auto_tools=bool(tool_parser),
        tokenizer=tokenizer,
    )
    return parser


def vllm_chat_request(
    request: pb.GenerateRequest, tool_choice: str | dict[str, Any] | None = None
) -> ChatCompletionRequest:
    """The request as vLLM's ``ChatCompletionRequest``: the context its parsers read (tools, tool choice, reasoning)."""
    from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest

    tools = chat_tools(request)
    return ChatCompletionRequest.model_validate(
        {
            "model": request.model or None,
            "messages": chat_messages(request),
            "tools": tools,
            "tool_choice": tool_choice if tool_choice is not None else chat_tool_choice(request),
            "parallel_tool_calls": request.parallel_tool_calls if tools else None,
            "include_reasoning": request.enable_reasoning if request.HasField("enable_reasoning") else True,
        }
    )


def delta_events(delta: DeltaMessage | None, tool_calls: ToolCallEvents) -> list[pb.GenerateEvent]:
    if delta is None:
        return []
    out: list[pb.GenerateEvent] = []
    if delta.reasoning:
        out.append(events.reasoning(delta.reasoning))
    if delta.content:
        out.append(events.text(delta.content))
    for call in delta.tool_calls:
        function = call.function
        out += tool_calls.delta(
            call.index, call.id, function.name if function else None, function.arguments if function else None
        )
    return out


class VllmParserOutput(OutputParser):
    """One request's output through a vLLM ``Parser`` (streaming path, so streamed and folded output agree)."""

    def __init__(self, parser: Parser, chat_request: ChatCompletionRequest) -> None:
        self._parser = parser
        self._request = parser.adjust_request(chat_request)
        self._tool_calls = ToolCallEvents()
        self._prompt_token_ids: list[int] | None = None
        self._token_ids: list[int] = []

    def bind_prompt(self, prompt_token_ids: list[int]) -> None:
        self._prompt_token_ids = list(prompt_token_ids)

    @property
    def skip_special_tokens(self) -> bool:
        skip: bool = self._request.skip_special_tokens
        return skip

    @property
    def made_tool_calls(self) -> bool:
        return self._tool_calls.made_tool_calls

    @property
    def reasoning_tokens(self) -> int:
        count: int = self._parser.count_reasoning_tokens(self._token_ids)
        return count

    def feed(self, delta_text: str, delta_token_ids: list[int]) -> list[pb.GenerateEvent]:
        self._token_ids.extend(delta_token_ids)
        return self._parse(delta_text, list(delta_token_ids), finished=False)

    def close(self) -> list[pb.GenerateEvent]:
        return self._parse("", [], finished=True) + self._tool_calls.close()

    def _parse(self, delta_text: str, delta_token_ids: list[int], *, finished: bool) -> list[pb.GenerateEvent]:
        delta = self._parser.parse_delta(
            delta_text, delta_token_ids, self._request, self._prompt_token_ids, finished=finished
        )
        return delta_events(delta, self._tool_calls)


class PlainTextOutput(OutputParser):
    """No parser configured: the generated text is the answer."""

    def feed(self, delta_text: str, delta_token_ids: list[int]) -> list[pb.GenerateEvent]:
        return [events.text(delta_text)] if delta_text else []

    def close(self) -> list[pb.GenerateEvent]:
        return []

    @property
    def made_tool_calls(self) -> bool:
        return False
