"""Canonical finish and usage → Anthropic ``stop_reason`` and ``usage`` (pure).

Anthropic counts input tokens in three disjoint parts whose sum is the prompt:
``cache_read_input_tokens`` (read from the replica's prefix cache, canonical
``cached_tokens``), ``cache_creation_input_tokens`` (written into it by this
request, canonical ``cache_written_tokens``) and ``input_tokens`` (the rest:
prompt - read - written). ``message_start`` is sent before the engine has said
how much of the prompt it found cached, so it carries the whole prompt as
``input_tokens`` (the parts still add up to the prompt), which is also what
``count_tokens`` returns; the final ``message_delta`` carries the split, the same
as the non-streamed message's ``usage`` (the SDKs' stream accumulators overwrite
the start's counts with the delta's).
"""

from __future__ import annotations

from typing import Any

from fleetgate.router.canonical.fold import UsageCounts
from fleetgate.v1 import replica_pb2 as pb

Reason = pb.Finish.Reason

_STOP_REASON: dict[int, str] = {
    Reason.REASON_STOP: "end_turn",
    Reason.REASON_LENGTH: "max_tokens",
    Reason.REASON_TOOL_CALLS: "tool_use",
    Reason.REASON_STOP_SEQUENCE: "stop_sequence",
}


def stop_reason(reason: int, has_tool_use: bool) -> str:
    """Anthropic's stop reason; a turn that produced tool_use blocks and stopped naturally is ``tool_use``."""
    mapped = _STOP_REASON.get(reason, "end_turn")
    if mapped == "end_turn" and has_tool_use:
        return "tool_use"
    return mapped


def stop_sequence(reason: int, matched: str) -> str | None:
    """The matched stop string when the stop reason is ``stop_sequence``, else None."""
    return matched if reason == Reason.REASON_STOP_SEQUENCE else None


def start_usage(prompt_tokens: int) -> dict[str, Any]:
    """Usage in ``message_start``: the whole prompt, nothing generated yet."""
    return {
        "input_tokens": prompt_tokens,
        "output_tokens": 0,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


def final_usage(usage: UsageCounts) -> dict[str, Any]:
    """Usage of a finished message (non-streaming ``usage`` and the final ``message_delta``)."""
    return {
        "input_tokens": usage.uncached_tokens,
        "output_tokens": usage.completion_tokens,
        "cache_creation_input_tokens": usage.cache_written,
        "cache_read_input_tokens": usage.cache_read,
    }
