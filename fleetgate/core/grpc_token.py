"""A gRPC server's check of a shared token in each call's metadata, once per call.

``TokenInterceptor`` looks at the call's metadata (the entry ``REPLICA_TOKEN_METADATA``,
``fleetgate/core/replica_auth.py``) before the handler runs: a call without the configured
token is answered ``UNAUTHENTICATED`` with the server's own message and never reaches the
servicer. Nothing runs per streamed message. Replicas (``replicas/auth.py``) and toolboxes
(``toolbox/server.py``) both serve behind it.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from fleetgate.core.replica_auth import REPLICA_TOKEN_METADATA


def presented_token(metadata: Any) -> str | None:
    """The shared token among a call's metadata pairs, if any."""
    for key, value in metadata or ():
        if key == REPLICA_TOKEN_METADATA:
            return value if isinstance(value, str) else None
    return None


def _refusals(message: str) -> tuple[grpc.RpcMethodHandler[Any, Any], grpc.RpcMethodHandler[Any, Any]]:
    """The handlers that end a refused call UNAUTHENTICATED: (unary, server-streaming)."""

    async def refuse(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        # A coroutine serves a server-streaming call too: it writes nothing.
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    return grpc.unary_unary_rpc_method_handler(refuse), grpc.unary_stream_rpc_method_handler(refuse)


class TokenInterceptor(grpc.aio.ServerInterceptor):
    """Lets through only calls whose metadata carries ``token``; the others end with ``refusal_message``."""

    def __init__(self, token: str, refusal_message: str) -> None:
        self._token = token.encode()
        self._refuse_unary, self._refuse_stream = _refusals(refusal_message)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        presented = presented_token(handler_call_details.invocation_metadata)
        if presented is not None and hmac.compare_digest(presented.encode(), self._token):
            return await continuation(handler_call_details)
        handler = await continuation(handler_call_details)
        if handler is not None and handler.response_streaming:
            return self._refuse_stream
        return self._refuse_unary
