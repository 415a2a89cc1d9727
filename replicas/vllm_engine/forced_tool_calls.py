"""Tool calls forced by the tool choice (``required`` or a named tool), made with vLLM structured outputs.

The output is constrained to the tool-call JSON vLLM uses for forced tool
choice (``get_json_schema_from_tools``): for a named tool, its arguments
object; for ``required``, an array of ``{"name", "parameters"}`` objects. That
JSON is turned into tool-call events as it streams (vLLM's own incremental
scanner for the array). Reasoning, where the model's parser separates it, comes
first and passes through unchanged: the format's parser runs underneath with the
tool choice set to ``none``, so it only separates reasoning from the answer.
"""

from __future__ import annotations

from vllm.sampling_params import StructuredOutputsParams

from fleetgate.replicas.formats.base import OutputParser
from fleetgate.replicas.formats.tool_call_events import ToolCallEvents
from fleetgate.replicas.formats.vllm_parsers import delta_events, vllm_chat_request
from fleetgate.v1 import replica_pb2 as pb

Mode = pb.ToolChoice.Mode


def tool_call_constraint(request: pb.GenerateRequest) -> StructuredOutputsParams:
    """Structured outputs that make the model write the forced tool call(s) as JSON."""
    from vllm.tool_parsers.utils import get_json_schema_from_tools

    chat_request = vllm_chat_request(request)
    schema = get_json_schema_from_tools(chat_request.tool_choice, chat_request.tools, chat_request.parallel_tool_calls)
    return StructuredOutputsParams(json=schema)


def without_tool_choice(request: pb.GenerateRequest) -> pb.GenerateRequest:
    """A copy of ``request`` whose tool choice is ``none`` (for the parser running underneath)."""
    copy = pb.GenerateRequest()
    copy.CopyFrom(request)
    copy.tool_choice.CopyFrom(pb.ToolChoice(mode=Mode.MODE_NONE))
    return copy


class ForcedToolCallParser(OutputParser):
    """Answer text (the constrained JSON) → tool-call events; everything else from ``inner`` as is."""

    def __init__(self, inner: OutputParser, tool_choice: pb.ToolChoice) -> None:
        self._inner = inner
        self._named = tool_choice.name if tool_choice.mode == Mode.MODE_NAMED else None
        self._text = ""
        self._tool_calls = ToolCallEvents()

    @property
    def made_tool_calls(self) -> bool:
        return self._tool_calls.made_tool_calls

    @property
    def reasoning_tokens(self) -> int:
        return self._inner.reasoning_tokens

    @property
    def skip_special_tokens(self) -> bool:
        return self._inner.skip_special_tokens

    def bind_prompt(self, prompt_token_ids: list[int]) -> None:
        self._inner.bind_prompt(prompt_token_ids)

    def feed(self, delta_text: str, delta_token_ids: list[int]) -> list[pb.GenerateEvent]:
        return self._convert(self._inner.feed(delta_text, delta_token_ids))

    def close(self) -> list[pb.GenerateEvent]:
        return self._convert(self._inner.close()) + self._tool_calls.close()

    def _convert(self, inner_events: list[pb.GenerateEvent]) -> list[pb.GenerateEvent]:
        out: list[pb.GenerateEvent] = []
        for event in inner_events:
            if event.HasField("text"):
                out += self._arguments(event.text.text)
            elif not event.WhichOneof("event").startswith("tool_call"):
                out.append(event)
        return out

    def _arguments(self, delta: str) -> list[pb.GenerateEvent]:
        previous, self._text = self._text, self._text + delta
        if self._named is not None:
            return self._tool_calls.delta(0, None, self._named, delta)
        from vllm.tool_parsers.streaming import extract_required_tool_call_streaming

        message, _ = extract_required_tool_call_streaming(
            previous_text=previous, current_text=self._text, tool_call_idx=None, tool_call_id_type="random"
        )
        if message is not None:
            # vLLM's ids here are random ones it makes up: the calls get ours (fleetgate.core.tool_call_ids).
            for call in message.tool_calls:
                call.id = None
        return delta_events(message, self._tool_calls)
