"""The one canonical API error and its constructors (each dialect renders it in its own shape).

Every failure a client can see is an ``ApiError`` (status, kind, message, param,
retry_after, code; optionally OpenAI's own error ``type`` and extra response headers,
as a rate limit's 429 has). Routes and adapters raise it; each dialect renders it
in its own shape (``Dialect.error_body``: OpenAI's in ``router.dialects.openai_shape``,
Anthropic's in ``router.dialects.messages.shape``), and the exception handlers of
``router.error_responses`` answer with the body of the dialect that owns the route.
This module is pure (no HTTP, no Redis), so the canonical layer raises its errors too.

Mid-stream failures are not exceptions: they arrive as a canonical ``finish``
event with reason ERROR, and each dialect's stream encoder renders its own error
event with its error body.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from fleetgate.v1 import replica_pb2 as pb

if TYPE_CHECKING:
    from fastapi.exceptions import RequestValidationError


class ErrorKind(enum.StrEnum):
    INVALID_REQUEST = "invalid_request"
    AUTHENTICATION = "authentication"
    PERMISSION = "permission"
    NOT_FOUND = "not_found"
    REQUEST_TOO_LARGE = "request_too_large"
    RATE_LIMIT = "rate_limit"
    API_ERROR = "api_error"
    OVERLOADED = "overloaded"


class ApiError(Exception):
    """An error returned to the client in its dialect's shape."""

    def __init__(
        self,
        status: int,
        kind: ErrorKind,
        message: str,
        param: str | None = None,
        retry_after: int | None = None,
        *,
        code: str | None = None,
        openai_type: str | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.kind = ErrorKind(kind)
        self.message = message
        self.param = param
        self.retry_after = retry_after
        self.code = code
        # OpenAI's `type` when it is not the kind's usual one (a rate limit: "requests" or "tokens").
        self.openai_type = openai_type
        self.extra_headers = dict(extra_headers or {})

    def __repr__(self) -> str:
        return f"ApiError({self.status}, {self.kind.value}, {self.message!r}, param={self.param!r})"

    @property
    def headers(self) -> dict[str, str]:
        retry = {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}
        return {**self.extra_headers, **retry}


# ------------------------------------------------------------------ client values in messages

# A client's value quoted in an error message (a model or tool name, a schema's offending part) is cut to this
# many characters: an error body stays small whatever the request held.
MAX_ECHOED_CHARS = 200


def clipped(text: str, limit: int = MAX_ECHOED_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def echoed(value: str, limit: int = MAX_ECHOED_CHARS) -> str:
    """``value`` quoted for an error message (``repr``), cut to ``limit`` characters, saying how long it was."""
    return repr(value) if len(value) <= limit else f"{value[:limit]!r}… ({len(value)} characters)"


# ------------------------------------------------------------------ constructors


def invalid_request(message: str, param: str | None = None, *, code: str | None = None) -> ApiError:
    return ApiError(400, ErrorKind.INVALID_REQUEST, message, param, code=code)


def authentication_failed(message: str) -> ApiError:
    return ApiError(401, ErrorKind.AUTHENTICATION, message, code="invalid_api_key")


def not_found(message: str, param: str | None = None, *, code: str | None = None) -> ApiError:
    return ApiError(404, ErrorKind.NOT_FOUND, message, param, code=code)


def model_not_found(model: str) -> ApiError:
    return not_found(f"The model {echoed(model)} does not exist or is not served here", "model",
                     code="model_not_found")


def wrong_task(model: str, *, embedding_model: bool) -> ApiError:
    """400: ``model`` is an embedding model asked to generate, or a generation model asked for embeddings."""
    if embedding_model:
        message = f"The model {echoed(model)} is an embedding model: it serves /v1/embeddings only"
    else:
        message = f"The model {echoed(model)} is not an embedding model: /v1/embeddings needs a model with task: embed"
    return invalid_request(message, "model", code="model_not_supported")


def request_too_large(limit_bytes: int) -> ApiError:
    return ApiError(413, ErrorKind.REQUEST_TOO_LARGE, f"Request body is larger than the limit of {limit_bytes} bytes")


def overloaded(message: str, retry_after: int | None) -> ApiError:
    return ApiError(503, ErrorKind.OVERLOADED, message, retry_after=retry_after)


def rate_limited(message: str, retry_after: int, *, limit: str, headers: Mapping[str, str]) -> ApiError:
    """429: the caller's key is over its ``limit`` ("requests" or "tokens", OpenAI's error type) for this window."""
    return ApiError(429, ErrorKind.RATE_LIMIT, message, retry_after=retry_after, code="rate_limit_exceeded",
                    openai_type=limit, extra_headers=headers)


STATE_STORE_UNAVAILABLE_MESSAGE = "shared state store unavailable, retry"


def state_store_unavailable(retry_after: int | None) -> ApiError:
    """Redis (API keys, stored responses, the registry) could not be reached: the client may retry."""
    return ApiError(503, ErrorKind.OVERLOADED, STATE_STORE_UNAVAILABLE_MESSAGE, retry_after=retry_after,
                    code="state_store_unavailable")


def internal_error(message: str = "The server had an error while processing the request") -> ApiError:
    return ApiError(500, ErrorKind.API_ERROR, message)


_FROM_CODE: dict[int, tuple[int, ErrorKind, str | None]] = {
    pb.ERROR_CODE_INVALID_REQUEST: (400, ErrorKind.INVALID_REQUEST, None),
    pb.ERROR_CODE_CONTEXT_LENGTH_EXCEEDED: (400, ErrorKind.INVALID_REQUEST, "context_length_exceeded"),
    pb.ERROR_CODE_UNKNOWN_MODEL: (404, ErrorKind.NOT_FOUND, "model_not_found"),
    pb.ERROR_CODE_UNSUPPORTED: (400, ErrorKind.INVALID_REQUEST, "unsupported"),
    pb.ERROR_CODE_OVERLOADED: (503, ErrorKind.OVERLOADED, None),
    pb.ERROR_CODE_INTERNAL: (500, ErrorKind.API_ERROR, None),
}


def from_error_code(code: int, message: str) -> ApiError:
    """The ApiError for a replica's ``finish(ERROR, code, message)``."""
    status, kind, wire_code = _FROM_CODE.get(code, (500, ErrorKind.API_ERROR, None))
    return ApiError(status, kind, message or "The replica failed the request", code=wire_code)


_TO_CODE: dict[ErrorKind, pb.ErrorCode] = {
    ErrorKind.INVALID_REQUEST: pb.ERROR_CODE_INVALID_REQUEST,
    ErrorKind.NOT_FOUND: pb.ERROR_CODE_UNKNOWN_MODEL,
    ErrorKind.OVERLOADED: pb.ERROR_CODE_OVERLOADED,
}


def to_error_code(err: ApiError) -> pb.ErrorCode:
    """The canonical error code closest to ``err``, for an error ``finish`` event the router makes itself."""
    if err.code == "context_length_exceeded":
        return pb.ERROR_CODE_CONTEXT_LENGTH_EXCEEDED
    return _TO_CODE.get(err.kind, pb.ERROR_CODE_INTERNAL)


def from_validation_error(
    exc: ValidationError | RequestValidationError, *, prefix: Sequence[str | int] = (), body: Any = None
) -> ApiError:
    """A 400 whose message names the offending field(s), e.g. ``messages[0].role: Input should be ...``.

    When a union's members fail at different depths (``content`` is neither a
    string nor a valid list of parts), only the deepest failures are reported. With
    the validated ``body``, the tags pydantic puts into a tagged union's location (a
    message's ``role``, a block's ``type``) are left out of the path.
    """
    found = [
        (field_path([*prefix, *_field_locations(e.get("loc", ()), body)]), _error_message(e)) for e in exc.errors()
    ]
    paths = [path for path, _ in found]
    described: list[str] = []
    params: list[str] = []
    for path, msg in found:
        if any(_is_inside(other, path) for other in paths):
            continue
        line = f"{path}: {msg}" if path else msg
        if line not in described:
            described.append(line)
            params.append(path)
    message = "; ".join(described[:3]) + (f" (and {len(described) - 3} more)" if len(described) > 3 else "")
    return invalid_request(message or "Invalid request", params[0] if params and params[0] else None)


def _error_message(error: Any) -> str:
    """pydantic's message, except for a tagged union's unknown tag: that names the type the client sent."""
    ctx = error.get("ctx") or {}
    if error.get("type") == "union_tag_invalid" and "tag" in ctx:
        discriminator = str(ctx.get("discriminator", "type")).strip("'")
        return f"unsupported {discriminator} {echoed(str(ctx['tag']))} (expected one of {ctx.get('expected_tags', '')})"
    return str(error.get("msg", "invalid value"))


def _is_inside(path: str, parent: str) -> bool:
    """``messages[0].content[1]`` is inside ``messages[0].content``."""
    return len(path) > len(parent) and path.startswith(parent) and path[len(parent)] in "[." and bool(parent)


# pydantic puts the union member it tried into `loc` ("str", "list[...]", "function-after[...]"):
# those are not fields the client wrote.
_TYPE_TAGS = {"str", "int", "float", "bool", "dict", "list", "none", "bytes", "tuple", "set", "literal"}


def _field_locations(loc: Iterable[Any], body: Any = None) -> list[str | int]:
    kept: list[str | int] = []
    node = body
    parts = list(loc)
    for position, part in enumerate(parts):
        if isinstance(part, int):
            kept.append(part)
            node = node[part] if isinstance(node, list) and -len(node) <= part < len(node) else None
        elif part in ("body",) and not kept:
            continue
        elif "[" in part or part in _TYPE_TAGS or _is_union_tag(node, part, last=position == len(parts) - 1):
            continue
        else:
            kept.append(part)
            node = node.get(part) if isinstance(node, dict) else None
    return kept


def _is_union_tag(node: Any, part: str, *, last: bool) -> bool:
    """``part`` is the tag of the tagged-union member ``node`` was validated as, not one of its fields: its
    ``type`` or ``role``, or (with more parts after it) any name ``node`` does not hold, as the tag a
    discriminator derives (a Responses message without its ``type``); a missing field is always the last."""
    if not isinstance(node, dict) or part in node:
        return False
    return part in (node.get("type"), node.get("role")) or not last


def field_path(parts: Sequence[str | int]) -> str:
    """``["messages", 0, "content"]`` -> ``messages[0].content``."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out
