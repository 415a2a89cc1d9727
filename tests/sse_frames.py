"""Reading the SSE bodies stream encoders make, and checking each payload against the SDK type that is its schema.

On the router's hot path, stream payloads are plain dicts, not SDK objects.
``sdk_event`` checks that a payload is exactly what the SDK type describes: it
validates as that type, and dumping the validated object (the fields that were
set, by alias) gives back the same JSON, so no field is missing, extra or of
another shape.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel, TypeAdapter

DONE = b"[DONE]"


def frames(body: bytes) -> list[bytes]:
    """The frames of an SSE body (each ends with a blank line)."""
    assert body.endswith(b"\n\n") or not body, body[-40:]
    return [frame for frame in body.split(b"\n\n") if frame]


def data_payloads(body: bytes) -> list[Any]:
    """The JSON payloads of a ``data:``-only body (OpenAI chunks), without the ``[DONE]`` terminator."""
    payloads = []
    for frame in frames(body):
        assert frame.startswith(b"data: "), frame
        data = frame.removeprefix(b"data: ")
        if data != DONE:
            payloads.append(orjson.loads(data))
    return payloads


def named_events(body: bytes) -> list[tuple[str, Any]]:
    """``(event name, JSON payload)`` of an ``event:``-named body (Anthropic, Responses)."""
    events = []
    for frame in frames(body):
        name_line, data_line = frame.split(b"\n")
        events.append((name_line.removeprefix(b"event: ").decode(), orjson.loads(data_line.removeprefix(b"data: "))))
    return events


def sdk_event(payload: dict[str, Any], schema: Any) -> BaseModel:
    """``payload`` validated as ``schema`` (an SDK model or union); fails unless it round-trips unchanged."""
    parsed = TypeAdapter(schema).validate_python(payload)
    assert isinstance(parsed, BaseModel)
    assert parsed.model_dump(mode="json", by_alias=True, exclude_unset=True) == payload
    return parsed
