"""Errors as HTTP responses: every exception a route raises, rendered in the dialect's error shape.

``install_error_handlers`` makes ``ApiError`` (``router.errors``), Starlette's
HTTP exceptions (unknown routes, wrong methods), pydantic validation errors,
Redis being unreachable (503 ``state_store_unavailable``) and unexpected
exceptions all JSON answers in the shape the request path calls for, so nothing
is ever a bare 500 with a traceback.
"""

from __future__ import annotations

import logging

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from fleetgate.router.errors import (
    ApiError,
    ErrorFormat,
    ErrorKind,
    error_body,
    error_format_for_path,
    from_validation_error,
    internal_error,
    state_store_unavailable,
)

log = logging.getLogger("fleetgate.router.errors")


def error_response(err: ApiError, fmt: ErrorFormat) -> Response:
    return Response(
        orjson.dumps(error_body(err, fmt)), status_code=err.status, headers=err.headers, media_type="application/json"
    )


_HTTP_KINDS = {
    400: ErrorKind.INVALID_REQUEST,
    401: ErrorKind.AUTHENTICATION,
    403: ErrorKind.PERMISSION,
    404: ErrorKind.NOT_FOUND,
    405: ErrorKind.INVALID_REQUEST,
    413: ErrorKind.REQUEST_TOO_LARGE,
    429: ErrorKind.RATE_LIMIT,
    503: ErrorKind.OVERLOADED,
}


def _http_exception_error(exc: StarletteHTTPException, path: str) -> ApiError:
    kind = _HTTP_KINDS.get(exc.status_code, ErrorKind.API_ERROR if exc.status_code >= 500 else ErrorKind.INVALID_REQUEST)
    message = str(exc.detail) if exc.detail else "Error"
    if exc.status_code == 404 and message == "Not Found":
        message = f"No route {path}"
    return ApiError(exc.status_code, kind, message)


def install_error_handlers(app: FastAPI, *, retry_after_seconds: int | None = None) -> None:
    """Render every exception as an ApiError in the request path's dialect shape.

    A ``RedisError`` anywhere in a request is ``state_store_unavailable`` (503 with
    ``Retry-After: retry_after_seconds``)."""

    async def on_api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return error_response(exc, error_format_for_path(request.url.path))

    async def on_http_exception(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return error_response(_http_exception_error(exc, request.url.path), error_format_for_path(request.url.path))

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, (RequestValidationError, ValidationError))
        return error_response(from_validation_error(exc), error_format_for_path(request.url.path))

    async def on_state_store_error(request: Request, exc: Exception) -> Response:
        log.warning("shared state store unavailable on %s %s: %s", request.method, request.url.path, exc)
        return error_response(state_store_unavailable(retry_after_seconds), error_format_for_path(request.url.path))

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(internal_error(), error_format_for_path(request.url.path))

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(StarletteHTTPException, on_http_exception)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(ValidationError, on_validation_error)
    app.add_exception_handler(RedisError, on_state_store_error)
    app.add_exception_handler(Exception, on_unexpected)
