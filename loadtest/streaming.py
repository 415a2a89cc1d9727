"""Reading the three dialects' SSE streams the way a client does: token arrival times and completion.

Pure code over lines of text, so the Locust users and the benchmark's load
generator share one definition of "a token arrived" and "the stream finished
cleanly". ``StreamParser`` is fed one line at a time (for async readers);
``read_stream`` runs it over an iterable of lines.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

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
DIALECTS = ("chat", "completions", "messages", "responses")


@dataclass
class StreamResult:
    """What one streamed request looked like from the client's side."""

    started_at: float
    token_times: list[float] = field(default_factory=list)
    finished: bool = False
    error: str | None = None
    last_payload: dict[str, Any] | None = None
    # Completion tokens the server reported in its usage, when it did.
    reported_completion_tokens: int | None = None

    @property
    def ttft(self) -> float | None:
        return self.token_times[0] - self.started_at if self.token_times else None

    @property
    def inter_token_latencies(self) -> list[float]:
        return [b - a for a, b in pairwise(self.token_times)]

    @property
    def completion_tokens(self) -> int:
        """Tokens generated: the server's usage when reported, else the token-carrying events seen."""
        if self.reported_completion_tokens is not None:
            return self.reported_completion_tokens
        return len(self.token_times)


def _chat_chunk_has_token(chunk: dict[str, Any]) -> bool:
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        if delta.get("content") or delta.get("reasoning") or delta.get("reasoning_content") or delta.get("tool_calls"):
            return True
    return False


def _usage_tokens(usage: object, key: str) -> int | None:
    tokens = usage.get(key) if isinstance(usage, dict) else None
    return tokens if isinstance(tokens, int) else None


class StreamParser:
    """Incremental reader of one SSE stream of ``dialect`` ("chat", "completions", "messages", "responses")."""

    def __init__(self, dialect: str, started_at: float | None = None) -> None:
        if dialect not in DIALECTS:
            raise ValueError(f"unknown dialect {dialect!r}; known: {DIALECTS}")
        self.dialect = dialect
        self.result = StreamResult(started_at=started_at if started_at is not None else time.perf_counter())
        self._event_name = ""

    def feed(self, raw: str | bytes, now: float | None = None) -> None:
        """Consume one line (without or with its line ending); ``now`` defaults to the current time."""
        line = raw.decode() if isinstance(raw, bytes) else raw
        line = line.rstrip("\r\n")
        if line.startswith("event:"):
            self._event_name = line[6:].strip()
            return
        if not line.startswith("data:"):
            return
        data = line[5:].strip()
        if now is None:
            now = time.perf_counter()
        result = self.result
        if data == "[DONE]":
            result.finished = result.error is None
            return
        payload = orjson.loads(data)
        kind = payload.get("type", self._event_name) if isinstance(payload, dict) else self._event_name
        self._event_name = ""
        if kind == "error" or (self.dialect in ("chat", "completions") and "error" in payload):
            err = payload.get("error") or payload
            result.error = str(err.get("message") if isinstance(err, dict) else err)
            return
        if self.dialect in ("chat", "completions"):
            self._feed_openai(payload, now)
        elif self.dialect == "messages":
            self._feed_messages(kind, payload, now)
        else:
            self._feed_responses(kind, payload, now)

    def _feed_openai(self, payload: dict[str, Any], now: float) -> None:
        result = self.result
        if self.dialect == "chat" and _chat_chunk_has_token(payload):
            result.token_times.append(now)
        elif self.dialect == "completions" and any(c.get("text") for c in payload.get("choices") or ()):
            result.token_times.append(now)
        reported = _usage_tokens(payload.get("usage"), "completion_tokens")
        if reported is not None:
            result.reported_completion_tokens = reported
        result.last_payload = payload

    def _feed_messages(self, kind: str, payload: dict[str, Any], now: float) -> None:
        result = self.result
        if kind in _MESSAGES_DELTA_EVENTS:
            result.token_times.append(now)
        elif kind == "message_stop":
            result.finished = result.error is None
        elif kind == "message_delta":
            result.last_payload = payload
            reported = _usage_tokens(payload.get("usage"), "output_tokens")
            if reported is not None:
                result.reported_completion_tokens = reported

    def _feed_responses(self, kind: str, payload: dict[str, Any], now: float) -> None:
        result = self.result
        if kind in _RESPONSES_DELTA_EVENTS:
            result.token_times.append(now)
        elif kind in _RESPONSES_TERMINAL:
            result.finished = result.error is None
            result.last_payload = payload.get("response")
            reported = _usage_tokens((result.last_payload or {}).get("usage"), "output_tokens")
            if reported is not None:
                result.reported_completion_tokens = reported
        elif kind == "response.failed":
            result.error = "response.failed"


def read_stream(dialect: str, lines: Iterable[str | bytes], started_at: float | None = None) -> StreamResult:
    """Consume SSE ``lines`` of ``dialect`` ("chat", "completions", "messages", "responses")."""
    parser = StreamParser(dialect, started_at)
    for line in lines:
        parser.feed(line)
    return parser.result
