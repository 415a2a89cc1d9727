"""How a vLLM completion ended → the stream's ``finish`` event.

vLLM reports ``finish_reason`` (stop, length, abort, error, repetition) and a
``stop_reason``: the stop string that matched, a stop token id, or None for EOS.
"""

from __future__ import annotations

from fleetgate.core import events
from fleetgate.core.events import ErrorCode, Reason
from fleetgate.v1 import replica_pb2 as pb


def finish_event(finish_reason: str | None, stop_reason: int | str | None, made_tool_calls: bool) -> pb.GenerateEvent:
    if finish_reason == "length":
        return events.finish(Reason.REASON_LENGTH)
    if finish_reason == "abort":
        return events.finish(Reason.REASON_ABORT)
    if finish_reason == "error":
        return events.error(ErrorCode.ERROR_CODE_INTERNAL, "the engine failed while generating")
    if made_tool_calls:
        return events.finish(Reason.REASON_TOOL_CALLS)
    if isinstance(stop_reason, str):
        return events.finish(Reason.REASON_STOP_SEQUENCE, stop_sequence=stop_reason)
    return events.finish(Reason.REASON_STOP)
