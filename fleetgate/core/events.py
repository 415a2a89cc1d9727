"""Constructors for canonical events (``fleetgate.v1.GenerateEvent``).

Engines build their event streams with these, so every engine emits the same
shapes: ``started`` first, then reasoning / text / tool-call events, then
``usage`` and exactly one ``finish`` last.
"""

from __future__ import annotations

from fleetgate.v1 import replica_pb2 as pb

Reason = pb.Finish.Reason
ErrorCode = pb.ErrorCode


def started(prompt_tokens: int, replica_id: str, max_tokens: int = 0) -> pb.GenerateEvent:
    return pb.GenerateEvent(
        started=pb.Started(prompt_tokens=prompt_tokens, replica_id=replica_id, max_tokens=max_tokens)
    )


def text(delta: str) -> pb.GenerateEvent:
    return pb.GenerateEvent(text=pb.TextDelta(text=delta))


def reasoning(delta: str) -> pb.GenerateEvent:
    return pb.GenerateEvent(reasoning=pb.ReasoningDelta(text=delta))


def tool_call_start(index: int, call_id: str, name: str) -> pb.GenerateEvent:
    return pb.GenerateEvent(tool_call_start=pb.ToolCallStart(index=index, id=call_id, name=name))


def tool_call_delta(index: int, delta: str) -> pb.GenerateEvent:
    return pb.GenerateEvent(tool_call_delta=pb.ToolCallArgumentsDelta(index=index, delta=delta))


def tool_call_end(index: int) -> pb.GenerateEvent:
    return pb.GenerateEvent(tool_call_end=pb.ToolCallEnd(index=index))


def usage(
    prompt: int, completion: int, cached: int = 0, reasoning_tokens: int = 0, cache_written: int = 0
) -> pb.GenerateEvent:
    return pb.GenerateEvent(
        usage=pb.Usage(
            prompt_tokens=prompt,
            completion_tokens=completion,
            cached_tokens=cached,
            reasoning_tokens=reasoning_tokens,
            cache_written_tokens=cache_written,
        )
    )


def finish(reason: pb.Finish.Reason, stop_sequence: str = "") -> pb.GenerateEvent:
    return pb.GenerateEvent(finish=pb.Finish(reason=reason, stop_sequence=stop_sequence))


def error(code: pb.ErrorCode, message: str) -> pb.GenerateEvent:
    return pb.GenerateEvent(finish=pb.Finish(reason=Reason.REASON_ERROR, error_code=code, error_message=message))
