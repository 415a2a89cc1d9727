"""Reading the three dialects' SSE streams the way a client does: token arrival times and completion.

Pure functions over lines of text, so the Locust users and the benchmark share one
definition of "a token arrived" and "the stream finished cleanly".
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import orjson

# Event types (Anthropic / Responses) or chunk fields (Chat) that carry generated tokens.
_MESSAGES_DELTA_EVENTS = {"content_block_delta"}
_RESPONSES_DELTA_EVENTS = {
    "response.output_text.delta",
    "response.function_call_arguments.delta",
    "response.reasoning_text.delta",
    "response.reasoning_summary_text.delta",
}
_RESPONSES_TERMINAL = {"response.completed", "response.incomplete"}


@dataclass
class StreamResult:
    """What one streamed request looked like from the client's side."""

    started_at: float
    token_times: list[float] = field(default_factory=list)
    finished: bool = False
    error: str | None = None
    last_payload: dict | None = None

    @property
    def ttft(self) -> float | None:
        return self.token_times[0] - self.started_at if self.token_times else None

    @property
    def inter_token_latencies(self) -> list[float]:
        return [b - a for a, b in zip(self.token_times, self.token_times[1:])]


def _chat_chunk_has_token(chunk: dict) -> bool:
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        if delta.get("content") or delta.get("reasoning") or delta.get("tool_calls"):
            return True
    return False


def read_stream(dialect: str, lines: Iterable[str | bytes], started_at: float | None = None) -> StreamResult:
    """Consume SSE ``lines`` of ``dialect`` ("chat", "completions", "messages", "responses")."""
    result = StreamResult(started_at=started_at if started_at is not None else time.perf_counter())
    event_name = ""
    for raw in lines:
        line = raw.decode() if isinstance(raw, bytes) else raw
        line = line.rstrip("\r")
        if line.startswith("event:"):
            event_name = line[6:].strip()
            continue
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        now = time.perf_counter()
        if data == "[DONE]":
            result.finished = result.error is None
            continue
        payload = orjson.loads(data)
        kind = payload.get("type", event_name) if isinstance(payload, dict) else event_name
        if kind == "error" or (dialect in ("chat", "completions") and "error" in payload):
            err = payload.get("error") or payload
            result.error = str(err.get("message") if isinstance(err, dict) else err)
            continue
        if dialect in ("chat", "completions"):
            if dialect == "chat" and _chat_chunk_has_token(payload):
                result.token_times.append(now)
            elif dialect == "completions" and any(c.get("text") for c in payload.get("choices") or ()):
                result.token_times.append(now)
            result.last_payload = payload
        elif dialect == "messages":
            if kind in _MESSAGES_DELTA_EVENTS:
                result.token_times.append(now)
            elif kind == "message_stop":
                result.finished = result.error is None
            elif kind == "message_delta":
                result.last_payload = payload
        elif dialect == "responses":
            if kind in _RESPONSES_DELTA_EVENTS:
                result.token_times.append(now)
            elif kind in _RESPONSES_TERMINAL:
                result.finished = result.error is None
                result.last_payload = payload.get("response")
            elif kind == "response.failed":
                result.error = "response.failed"
        event_name = ""
    return result
