"""Server-sent events framing (orjson, never string-built JSON).

``data: {...}\\n\\n`` for OpenAI-style streams, ``event: name\\ndata: {...}\\n\\n``
for Anthropic and Responses streams, and the OpenAI ``data: [DONE]`` terminator.
"""

from __future__ import annotations

from typing import Any

import orjson

MEDIA_TYPE = "text/event-stream"
# Proxies must not buffer or cache a token stream.
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
DONE = b"data: [DONE]\n\n"


def data_frame(payload: Any) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def event_frame(event: str, payload: Any) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def comment_frame(text: str = "") -> bytes:
    """An SSE comment line, ignored by clients (a transport keep-alive)."""
    return b": " + text.encode() + b"\n\n"
