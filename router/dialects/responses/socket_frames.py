"""Messages of the Responses WebSocket (pure): the SSE stream's events one JSON text message each, and errors.

The pipeline streams a Responses call as SSE chunks: ``event: NAME\\ndata: JSON\\n\\n`` frames built by
``router.canonical.sse`` with orjson, which never writes a raw newline inside JSON. Over the WebSocket
each frame's JSON is sent as it is, byte for byte, as one text message (``event_messages``): the events
are exactly the SSE stream's. A ``response.create`` that names a ``stream_id`` (the client's lane, as the
OpenAI SDK's WebSocket sessions send it) has it echoed on every event of its response.

An error the call meets before its stream starts (what HTTP answers with a status) and a message the
socket cannot take are one ``error`` event, in the shape of OpenAI's WebSocket errors
(``error_message``)::

    {"type": "error", "status": 400,
     "error": {"type": "invalid_request_error", "code": "previous_response_not_found",
               "message": "...", "param": "previous_response_id"}}

plus ``headers`` when the HTTP answer would have had some (``Retry-After``, a key's rate-limit headers).
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from fleetgate.router.error_responses import ErrorShape
from fleetgate.router.errors import ApiError, invalid_request

_DATA_LINE = b"\ndata: "
# A lane id as the OpenAI SDK makes them.
_STREAM_ID = re.compile(r"[A-Za-z0-9_.-]{1,256}")


def event_messages(chunk: bytes, stream_id: str | None = None) -> list[str]:
    """The JSON of each SSE frame in ``chunk``, in order, as text messages (comment frames left out)."""
    messages: list[str] = []
    for frame in chunk.split(b"\n\n"):
        start = frame.find(_DATA_LINE)
        if start < 0:
            continue
        payload = frame[start + len(_DATA_LINE):]
        if stream_id is not None:
            payload = with_stream_id(payload, stream_id)
        messages.append(payload.decode())
    return messages


def with_stream_id(payload: bytes, stream_id: str) -> bytes:
    """A JSON object's bytes with ``stream_id`` as its last member."""
    return payload[:-1] + b',"stream_id":' + orjson.dumps(stream_id) + b"}"


def error_message(err: ApiError, shape: ErrorShape, stream_id: str | None = None) -> str:
    """The ``error`` event for ``err``, its ``error`` member in ``shape``'s error body."""
    event: dict[str, Any] = {"type": "error", "status": err.status, "error": shape.error_body(err)["error"]}
    if err.headers:
        event["headers"] = err.headers
    if stream_id is not None:
        event["stream_id"] = stream_id
    return orjson.dumps(event).decode()


def lane_of(message: dict[str, Any]) -> str | None:
    """The ``stream_id`` a client message names (None: the default lane); a 400 for one that is not an id."""
    stream_id = message.get("stream_id")
    if stream_id is None or (isinstance(stream_id, str) and _STREAM_ID.fullmatch(stream_id)):
        return stream_id
    raise invalid_request("stream_id must be 1 to 256 ASCII letters, digits, '_', '-' or '.'", "stream_id")
