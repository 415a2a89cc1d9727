"""Fold a canonical event stream into one ``Completion`` (pure).

Non-streaming responses of every dialect are the streamed events folded, so
streaming and non-streaming can never disagree. ``CompletionFolder`` folds one
event at a time (the pipeline feeds it while streaming, so the finished completion
is known when the last frame is sent) and hands back the event's segment steps,
which the Messages and Responses stream encoders render: each token is segmented
once.

The output is kept as the ordered list of segments (``router.canonical.segments``:
reasoning, text, tool call, in the order the stream shows them), which dialects
with several blocks or items (Messages, Responses) render one by one. ``text``,
``reasoning`` and ``tool_calls`` are the same output joined, for dialects whose
wire shape has one of each (Chat, Completions).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fleetgate.router.canonical.event_kinds import TOKEN_EVENTS
from fleetgate.router.canonical.segments import Segment, SegmentStream, Step, ToolCallOut
from fleetgate.router.errors import ApiError, from_error_code
from fleetgate.v1 import replica_pb2 as pb

Reason = pb.Finish.Reason

@dataclass
class UsageCounts:
    """A generation's token counts as the engine reported them (canonical ``pb.Usage``).

    ``cached_tokens`` (read from the replica's prefix cache) and ``cache_written_tokens`` (written into it by
    this request) are parts of ``prompt_tokens``; ``uncached_tokens`` is the rest of the prompt, and
    ``cache_read`` / ``cache_written`` are the two parts clamped so the three always add up to the prompt
    (each dialect renders them in its own words).
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cache_written_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def cache_read(self) -> int:
        return max(0, min(self.cached_tokens, self.prompt_tokens))

    @property
    def cache_written(self) -> int:
        return max(0, min(self.cache_written_tokens, self.prompt_tokens - self.cache_read))

    @property
    def uncached_tokens(self) -> int:
        """Prompt tokens neither read from nor written into the prefix cache."""
        return self.prompt_tokens - self.cache_read - self.cache_written

    @classmethod
    def from_pb(cls, usage: pb.Usage) -> UsageCounts:
        return cls(usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens, usage.reasoning_tokens,
                   usage.cache_written_tokens)

    def plus(self, usage: pb.Usage) -> UsageCounts:
        """These counts and another generation's (a tool loop's turns add up to one answer's usage)."""
        return UsageCounts(self.prompt_tokens + usage.prompt_tokens, self.completion_tokens + usage.completion_tokens,
                           self.cached_tokens + usage.cached_tokens, self.reasoning_tokens + usage.reasoning_tokens,
                           self.cache_written_tokens + usage.cache_written_tokens)

    def to_pb(self) -> pb.Usage:
        return pb.Usage(prompt_tokens=self.prompt_tokens, completion_tokens=self.completion_tokens,
                        cached_tokens=self.cached_tokens, reasoning_tokens=self.reasoning_tokens,
                        cache_written_tokens=self.cache_written_tokens)


@dataclass
class Completion:
    """Everything one generation produced."""

    # The output blocks in stream order.
    segments: list[Segment] = field(default_factory=list)
    # All text joined, all reasoning joined, and the tool calls by index.
    text: str = ""
    reasoning: str = ""
    tool_calls: list[ToolCallOut] = field(default_factory=list)
    # The server-side tool calls the router's tool loop ran (router.server_tools), in order.
    server_tools: list[pb.ServerToolCall] = field(default_factory=list)
    usage: UsageCounts = field(default_factory=UsageCounts)
    finish_reason: Reason = Reason.REASON_UNSPECIFIED
    # The stop string that matched, for REASON_STOP_SEQUENCE.
    stop_sequence: str = ""
    # Set when the finish carried an error.
    error: ApiError | None = None
    replica_id: str = ""
    # The replica's max_tokens after clamping to the context left.
    max_tokens: int = 0
    finished: bool = False
    # Output events carrying tokens (text, reasoning, tool arguments) folded so far: the output a generation
    # that ended before its usage event is charged for.
    output_events: int = 0
    # Whether the engine's own usage event arrived (then `usage` is what it reported).
    usage_reported: bool = False

    @property
    def has_content(self) -> bool:
        return bool(self.text or self.reasoning or self.tool_calls or self.server_tools)


class CompletionFolder:
    """Accumulates events into a ``Completion``."""

    def __init__(self) -> None:
        self.completion = Completion()
        self._segments = SegmentStream()

    def add(self, event: pb.GenerateEvent, kind: str | None = None) -> list[Step]:
        """Fold ``event``; returns its segment steps (``router.canonical.segments``), which stream encoders
        that show blocks or items render instead of segmenting the event again. ``kind`` is the event's
        ``WhichOneof("event")`` when the caller has it already (the streaming loop reads it of every event)."""
        if (kind if kind is not None else event.WhichOneof("event")) in TOKEN_EVENTS:
            self.completion.output_events += 1
        steps = self._segments.feed(event)
        for step in steps:
            if isinstance(step, pb.GenerateEvent):
                self._apply(step)
        return steps

    def _apply(self, event: pb.GenerateEvent) -> None:
        kind = event.WhichOneof("event")
        c = self.completion
        if kind == "started":
            c.replica_id = event.started.replica_id
            c.max_tokens = event.started.max_tokens
            if not c.usage_reported:
                c.usage = UsageCounts(prompt_tokens=event.started.prompt_tokens)
        elif kind == "usage":
            c.usage = UsageCounts.from_pb(event.usage)
            c.usage_reported = True
        elif kind == "finish":
            self._finish(event.finish)

    def _finish(self, finish: pb.Finish) -> None:
        c = self.completion
        c.finished = True
        c.finish_reason = finish.reason
        c.stop_sequence = finish.stop_sequence
        if finish.reason == Reason.REASON_ERROR:
            c.error = from_error_code(finish.error_code, finish.error_message)
        self._segments.close()
        c.segments = list(self._segments.segments)
        c.text = "".join(s.text for s in c.segments if s.kind == "text")
        c.reasoning = "".join(s.text for s in c.segments if s.kind == "reasoning")
        calls = [s.tool_call() for s in c.segments if s.kind == "tool_call"]
        c.tool_calls = sorted(calls, key=lambda call: call.index)
        c.server_tools = [s.server_tool for s in c.segments if s.server_tool is not None]

