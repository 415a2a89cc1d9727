"""A replica's check of the routers' shared token (``replica.auth_token``), once per gRPC call.

``TokenInterceptor`` is the shared interceptor (``fleetgate/core/grpc_token.py``) with the replica's
refusal message: a call without the configured token is answered ``UNAUTHENTICATED`` and never reaches
the servicer. Nothing runs per streamed message.
"""

from __future__ import annotations

from fleetgate.core import grpc_token

REFUSAL_MESSAGE = "this replica serves only its routers: the call carries no valid replica token"


class TokenInterceptor(grpc_token.TokenInterceptor):
    """Lets through only calls whose metadata carries ``token`` (the replica's refusal otherwise)."""

    def __init__(self, token: str) -> None:
        super().__init__(token, REFUSAL_MESSAGE)
