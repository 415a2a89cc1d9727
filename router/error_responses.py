"""Errors as HTTP responses: every exception a route raises, in the error shape of the dialect owning the route.

``install_error_handlers`` makes ``ApiError`` (``router.errors``), Starlette's
HTTP exceptions (unknown routes, wrong methods), pydantic validation errors,
Redis being unreachable (503 ``state_store_unavailable``) and unexpected
exceptions all JSON answers, so nothing is ever a bare 500 with a traceback, and an unexpected exception
is answered as a 500 in the dialect's shape that leaves the keep-alive connection usable.

The body comes from the dialect that owns the matched route: each dialect's
``routes.py`` makes its ``APIRouter`` with ``dialect_router``, whose routes know
their dialect (a wrong method on one is still its route). A path no dialect's
route matches (an unknown route, ``/v1/models``, ``/health``) is matched by path
alone: a dialect's path space (``/v1/messages`` for Anthropic's), else the
default shape (OpenAI's).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, ClassVar, Protocol

import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import ValidationError
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from fleetgate.router.errors import (
    ApiError,
    ErrorKind,
    from_validation_error,
    internal_error,
    state_store_unavailable,
)

log = logging.getLogger("fleetgate.router.errors")


class ErrorShape(Protocol):
    """What renders an error body: every dialect (``Dialect.error_body``), and the default shape."""

    def error_body(self, err: ApiError) -> dict[str, Any]: ...


def error_response(err: ApiError, shape: ErrorShape) -> Response:
    return Response(
        orjson.dumps(shape.error_body(err)), status_code=err.status, headers=err.headers, media_type="application/json"
    )


def unexpected_error(request: Request, exc: Exception) -> ApiError:
    """The 500 for an exception nothing expected: logged with its traceback, its text never sent."""
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return internal_error()


# What the handlers installed by install_error_handlers answer; any other exception is unexpected.
HANDLED_EXCEPTIONS: tuple[type[Exception], ...] = (
    ApiError, StarletteHTTPException, RequestValidationError, ValidationError, RedisError,
)


class DialectRoute(APIRoute):
    """A route a dialect owns: its errors are answered in that dialect's shape (``dialect_router``).

    An unexpected exception of its handler is answered here, as a 500 in the dialect's shape. Left to
    Starlette, it would reach the outermost ServerErrorMiddleware, which answers and then re-raises it to the
    server, and uvicorn closes the client's keep-alive connection after any exception escapes the app: the
    client's next request on it would fail. (An exception inside a streamed body comes after the response
    started: the stream ends with the dialect's error event, ``router.pipeline.runner``.)
    """

    dialect: ClassVar[ErrorShape]

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        dialect = self.dialect

        async def answering_unexpected(request: Request) -> Response:
            try:
                return await handler(request)
            except HANDLED_EXCEPTIONS:
                raise
            except Exception as exc:
                return error_response(unexpected_error(request, exc), dialect)

        return answering_unexpected


def dialect_router(dialect: ErrorShape) -> APIRouter:
    """An ``APIRouter`` whose routes answer their errors in ``dialect``'s shape."""
    route_class = type(f"{type(dialect).__name__}Route", (DialectRoute,), {"dialect": dialect})
    return APIRouter(route_class=route_class)


def shape_of(request: Request, default: ErrorShape, path_spaces: Mapping[str, ErrorShape]) -> ErrorShape:
    """The shape of the dialect whose route matched ``request``; for a path no dialect's route matches, the
    dialect whose path space it is in, else ``default``."""
    route = request.scope.get("route")
    if isinstance(route, DialectRoute):
        return route.dialect
    path = request.url.path
    return next((shape for prefix, shape in path_spaces.items() if path.startswith(prefix)), default)


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
    otherwise = ErrorKind.API_ERROR if exc.status_code >= 500 else ErrorKind.INVALID_REQUEST
    kind = _HTTP_KINDS.get(exc.status_code, otherwise)
    message = str(exc.detail) if exc.detail else "Error"
    if exc.status_code == 404 and message == "Not Found":
        message = f"No route {path}"
    return ApiError(exc.status_code, kind, message)


def install_error_handlers(
    app: FastAPI,
    *,
    default: ErrorShape,
    path_spaces: Mapping[str, ErrorShape],
    retry_after_seconds: int | None = None,
) -> None:
    """Render every exception as an ApiError in the shape of the route's dialect (see the module docstring).

    A ``RedisError`` anywhere in a request is ``state_store_unavailable`` (503 with
    ``Retry-After: retry_after_seconds``)."""

    def respond(request: Request, err: ApiError) -> Response:
        return error_response(err, shape_of(request, default, path_spaces))

    async def on_api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return respond(request, exc)

    async def on_http_exception(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return respond(request, _http_exception_error(exc, request.url.path))

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, (RequestValidationError, ValidationError))
        return respond(request, from_validation_error(exc))

    async def on_state_store_error(request: Request, exc: Exception) -> Response:
        log.warning("shared state store unavailable on %s %s: %s", request.method, request.url.path, exc)
        return respond(request, state_store_unavailable(retry_after_seconds))

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        return respond(request, unexpected_error(request, exc))

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(StarletteHTTPException, on_http_exception)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(ValidationError, on_validation_error)
    app.add_exception_handler(RedisError, on_state_store_error)
    # The backstop for an exception raised outside a dialect's routes (those answer their own: DialectRoute).
    app.add_exception_handler(Exception, on_unexpected)
