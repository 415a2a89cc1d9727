"""Reading request bodies and writing JSON responses (orjson); the router's own response headers.

``read_json_body`` enforces ``router.max_body_bytes`` while reading (a declared
Content-Length over the limit is refused at once, and a body that grows past it
is refused as soon as it does, whatever the headers said) and turns malformed
JSON into a 400. A body declared as anything but JSON (``application/json``, with
or without parameters such as ``charset=utf-8``, or a ``+json`` type) is refused
with 415 before it is read: a browser page may send ``text/plain`` or a form
cross-origin without asking, never ``application/json``. A body without a
Content-Type is read as JSON.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from fleetgate.router.errors import ApiError, ErrorKind, invalid_request, request_too_large

# Names the replica that served a generation (every dialect, JSON and SSE).
REPLICA_HEADER = "x-fleetgate-replica"
# How much of an unacceptable Content-Type a 415 quotes.
_QUOTED_CONTENT_TYPE_CHARS = 100


def is_json_media_type(content_type: str) -> bool:
    """True for ``application/json`` and ``…+json`` types, whatever their parameters and case."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))


def unsupported_media_type(content_type: str) -> ApiError:
    quoted = content_type[:_QUOTED_CONTENT_TYPE_CHARS]
    message = f"The request body must be JSON (Content-Type: application/json), not {quoted!r}"
    return ApiError(415, ErrorKind.INVALID_REQUEST, message)


async def read_json_body(request: Request, max_bytes: int) -> Any:
    content_type = request.headers.get("content-type")
    if content_type is not None and not is_json_media_type(content_type):
        raise unsupported_media_type(content_type)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise request_too_large(max_bytes)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise request_too_large(max_bytes)
        chunks.append(chunk)
    body = b"".join(chunks)
    if not body.strip():
        raise invalid_request("The request body is empty: send a JSON object")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise invalid_request(f"The request body is not valid JSON: {exc}") from None


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, headers=headers, media_type="application/json")
