"""What the OpenAI dialects share (pure): sampling fields, finish reasons, usage, and the SSE chunk encoder base.

Chat Completions and legacy Completions take the same sampling parameters, report
the same ``finish_reason`` values and usage object, and end their streams the same
way (an optional usage chunk with ``choices: []``, an error chunk
``{"error": {...}}`` for a mid-stream failure, then ``data: [DONE]``).
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from fleetgate.router.canonical import sse
from fleetgate.router.canonical.bounds import Float32, Seed, TokenLimit, TopK
from fleetgate.router.canonical.fold import UsageCounts
from fleetgate.router.canonical.reasoning import REASONING_OFF, canonical_effort
from fleetgate.router.canonical.segments import Step
from fleetgate.router.dialects.base import StreamEncoder
from fleetgate.router.dialects.openai_shape import openai_error_body
from fleetgate.router.errors import from_error_code, invalid_request
from fleetgate.v1 import replica_pb2 as pb

Reason = pb.Finish.Reason
FinishReason = Literal["stop", "length", "tool_calls"]


class Wire(BaseModel):
    """A wire object of an OpenAI request: unknown fields are accepted and ignored."""

    model_config = ConfigDict(extra="allow")


class StreamOptions(Wire):
    include_usage: bool | None = None


class OpenAISamplingFields(Wire):
    """Request fields both OpenAI dialects share."""

    model: str
    max_tokens: TokenLimit | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    # vLLM's extension: -1 (or 0) turns it off.
    top_k: TopK | None = Field(None, ge=-1)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    repetition_penalty: Float32 | None = Field(None, gt=0)
    seed: Seed | None = None
    stop: str | list[str] | None = None
    n: int | None = None
    user: str | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    # LM Studio's field: the model's idle TTL in seconds (router.elastic), for models that scale.
    ttl: int | None = Field(None, ge=1)

    @property
    def include_usage(self) -> bool:
        return bool(self.stream and self.stream_options and self.stream_options.include_usage)


def check_single_choice(n: int | None) -> None:
    if n is not None and n != 1:
        raise invalid_request(f"n={n} is not supported: fleetgate generates exactly one choice (n=1)", "n")


def stop_list(stop: str | list[str] | None) -> list[str]:
    if stop is None:
        return []
    stops = [stop] if isinstance(stop, str) else stop
    if any(s == "" for s in stops):
        raise invalid_request("stop sequences must not be empty strings", "stop")
    return stops


def canonical_sampling(request: OpenAISamplingFields, max_tokens: int | None) -> pb.Sampling:
    top_k = -1 if request.top_k == 0 else request.top_k
    return pb.Sampling(
        temperature=request.temperature,
        top_p=request.top_p,
        top_k=top_k,
        max_tokens=max_tokens,
        stop=stop_list(request.stop),
        seed=request.seed,
        presence_penalty=request.presence_penalty,
        frequency_penalty=request.frequency_penalty,
        repetition_penalty=request.repetition_penalty,
    )


def canonical_reasoning(effort: str | None) -> tuple[bool | None, str]:
    """OpenAI ``reasoning_effort`` -> ``(enable_reasoning, canonical effort)``; "none" turns reasoning off."""
    if effort is None:
        return None, ""
    if effort == REASONING_OFF:
        return False, ""
    return True, canonical_effort(effort)


_FINISH_REASONS: dict[int, FinishReason] = {Reason.REASON_LENGTH: "length", Reason.REASON_TOOL_CALLS: "tool_calls"}


def finish_reason(reason: int, made_tool_calls: bool) -> FinishReason:
    """stop / length / tool_calls (a matched stop sequence is "stop")."""
    mapped = _FINISH_REASONS.get(reason, "stop")
    return "tool_calls" if mapped == "stop" and made_tool_calls else mapped


def usage_body(usage: UsageCounts) -> dict[str, Any]:
    """The ``usage`` object (``CompletionUsage``'s fields, in its order)."""
    return {
        "completion_tokens": usage.completion_tokens,
        "prompt_tokens": usage.prompt_tokens,
        "total_tokens": usage.total_tokens,
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "prompt_tokens_details": {"cached_tokens": usage.cache_read},
    }


def dump(model: BaseModel) -> dict[str, Any]:
    """An SDK response object as JSON-ready data, with exactly the fields that were set."""
    return model.model_dump(mode="json", exclude_unset=True)


class OpenAIStreamEncoder(StreamEncoder):
    """The chunks of one stream, as plain dicts in the SDK's field order (``ChatCompletionChunk``,
    ``Completion``): the envelope shared by every chunk, usage held until the finish, the finish
    chunk, the optional usage chunk, the error chunk, ``[DONE]``."""

    # The chunks' ``object``.
    object_type: ClassVar[str]
    # With include_usage, every chunk but the usage chunk carries ``"usage": null`` (Chat Completions).
    null_usage_on_chunks: ClassVar[bool] = False

    def __init__(self, *, object_id: str, created: int, model: str, include_usage: bool) -> None:
        self.include_usage = include_usage
        self._id = object_id
        self._created = created
        self._model = model
        self._null_usage = include_usage and self.null_usage_on_chunks
        self._usage = UsageCounts()
        self._made_tool_calls = False

    def chunk(self, choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> dict[str, Any]:
        chunk = {"id": self._id, "choices": choices, "created": self._created, "model": self._model,
                 "object": self.object_type}
        if usage is not None or self._null_usage:
            chunk["usage"] = usage
        return chunk

    def encode(self, event: pb.GenerateEvent, steps: list[Step]) -> bytes:
        kind = event.WhichOneof("event")
        if kind == "started":
            self._usage = UsageCounts(prompt_tokens=event.started.prompt_tokens)
        elif kind == "usage":
            self._usage = UsageCounts.from_pb(event.usage)
            return b""
        elif kind == "finish":
            return self._finish(event.finish)
        elif kind == "tool_call_start":
            self._made_tool_calls = True
        chunk = self.content_chunk(kind, event)
        return sse.data_frame(chunk) if chunk is not None else b""

    def _finish(self, finish: pb.Finish) -> bytes:
        if finish.reason == Reason.REASON_ERROR:
            return sse.data_frame(openai_error_body(from_error_code(finish.error_code, finish.error_message)))
        chunks = [self.finish_chunk(finish_reason(finish.reason, self._made_tool_calls))]
        if self.include_usage:
            chunks.append(self.chunk([], usage_body(self._usage)))
        return sse.data_frames(chunks)

    def close(self) -> bytes:
        return sse.DONE

    @abc.abstractmethod
    def content_chunk(self, kind: str, event: pb.GenerateEvent) -> dict[str, Any] | None:
        """The chunk for ``started`` or a content event (``kind``: its oneof case), if it makes one."""

    @abc.abstractmethod
    def finish_chunk(self, reason: FinishReason) -> dict[str, Any]: ...
