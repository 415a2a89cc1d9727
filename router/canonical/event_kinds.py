"""Kinds of canonical events (pure): which ones are model output.

The pipeline (time to first token, inter-token latency, the stats clock) and the
dispatcher (no transparent retry once output was seen) both ask this of every
event, by its ``WhichOneof("event")`` case.
"""

from __future__ import annotations

CONTENT_EVENTS = frozenset({"text", "reasoning", "tool_call_start", "tool_call_delta", "tool_call_end"})
# The content events that carry generated tokens (one engine step each: what a generation that never reached its
# usage event is charged for, router.usage.charge).
TOKEN_EVENTS = frozenset({"text", "reasoning", "tool_call_delta"})
