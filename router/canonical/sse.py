"""Server-sent events framing (orjson, never string-built JSON).

``data: {...}\\n\\n`` for OpenAI-style streams, ``event: name\\ndata: {...}\\n\\n``
for Anthropic and Responses streams, and the OpenAI ``data: [DONE]`` terminator.

Stream encoders build their per-token payloads as plain dicts (the SDK types
stay the schema: tests validate every frame shape against them) and hand the
runner all frames of one canonical event as one ``bytes`` chunk, so each event
is one write to the client, whatever the number of frames it makes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

MEDIA_TYPE = "text/event-stream"
# Proxies must not buffer or cache a token stream.
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
DONE = b"data: [DONE]\n\n"

NamedEvent = tuple[str, dict[str, Any]]
"""An event of an ``event:``-named stream (Anthropic, Responses): (SSE event name, JSON payload)."""


def data_frame(payload: Any) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def data_frames(payloads: Iterable[Any]) -> bytes:
    """Several ``data:`` frames as one chunk."""
    return b"".join([data_frame(payload) for payload in payloads])


def event_frame(event: str, payload: Any) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def named(payload: dict[str, Any]) -> NamedEvent:
    """The event whose SSE name is its payload's ``type`` (every Anthropic and Responses event)."""
    return payload["type"], payload


def event_frames(events: Iterable[NamedEvent]) -> bytes:
    """Several named events as one chunk."""
    return b"".join([event_frame(name, payload) for name, payload in events])


def comment_frame(text: str = "") -> bytes:
    """An SSE comment line, ignored by clients (a transport keep-alive)."""
    return b": " + text.encode() + b"\n\n"
