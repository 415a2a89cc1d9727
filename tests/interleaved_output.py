"""A canonical event sequence in which a model interleaves reasoning, text and tool calls.

Used by the pure dialect tests (chat, messages, responses) that check a stream,
accumulated by the official SDK, equals the non-streaming object folded from the
same events. Text that arrives while a tool call is open waits until the call ends.
"""

from __future__ import annotations

from fleetgate.core import events as ev
from fleetgate.router.canonical.fold import Completion, CompletionFolder
from fleetgate.v1 import replica_pb2 as pb

WEATHER_ARGUMENTS = '{"city": "Paris"}'

INTERLEAVED = [
    ev.started(9, "replica-a", 64),
    ev.reasoning("Plan "), ev.reasoning("A."),
    ev.text("Let me "),
    ev.tool_call_start(0, "call_weather", "get_weather"),
    ev.text("check."),  # arrives while the call is open
    ev.tool_call_delta(0, '{"city": '), ev.tool_call_delta(0, '"Paris"}'), ev.tool_call_end(0),
    ev.reasoning("Then B."),
    ev.text("Done"), ev.text("!"),
    ev.tool_call_start(1, "call_time", "get_time"), ev.tool_call_end(1),
    ev.usage(9, 21, cached=2, reasoning_tokens=6),
    ev.finish(pb.Finish.REASON_TOOL_CALLS),
]

# (kind, text or arguments) of each output block, in order.
INTERLEAVED_SEGMENTS = [
    ("reasoning", "Plan A."), ("text", "Let me "), ("tool_call", WEATHER_ARGUMENTS), ("text", "check."),
    ("reasoning", "Then B."), ("text", "Done!"), ("tool_call", ""),
]


def folded(events: list[pb.GenerateEvent]) -> Completion:
    folder = CompletionFolder()
    for event in events:
        folder.add(event)
    return folder.completion
