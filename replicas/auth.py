"""A replica's check of the routers' shared token (``replica.auth_token``), once per gRPC call.

``TokenInterceptor`` looks at the call's metadata before the handler runs: a call
without the configured token is answered ``UNAUTHENTICATED`` and never reaches the
servicer. Nothing runs per streamed message.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from fleetgate.core.replica_auth import REPLICA_TOKEN_METADATA

REFUSAL_MESSAGE = "this replica serves only its routers: the call carries no valid replica token"


async def _refuse(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
    """Ends the call UNAUTHENTICATED (a coroutine serves a server-streaming call too: it writes nothing)."""
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, REFUSAL_MESSAGE)


_REFUSE_UNARY: grpc.RpcMethodHandler[Any, Any] = grpc.unary_unary_rpc_method_handler(_refuse)
_REFUSE_STREAM: grpc.RpcMethodHandler[Any, Any] = grpc.unary_stream_rpc_method_handler(_refuse)


def presented_token(metadata: Any) -> str | None:
    """The replica token among a call's metadata pairs, if any."""
    for key, value in metadata or ():
        if key == REPLICA_TOKEN_METADATA:
            return value if isinstance(value, str) else None
    return None


class TokenInterceptor(grpc.aio.ServerInterceptor):
    """Lets through only calls whose metadata carries ``token``."""

    def __init__(self, token: str) -> None:
        self._token = token.encode()

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
            return _REFUSE_STREAM
        return _REFUSE_UNARY
