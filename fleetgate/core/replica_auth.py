"""The shared token routers authenticate to replicas with: where it travels in a gRPC call.

Routers send ``replica.auth_token`` as the metadata entry ``REPLICA_TOKEN_METADATA``
of every call (``router/channel_pool.py``); a replica configured with a token
refuses calls without it (``replicas/auth.py``). Both halves import this module.
"""

from __future__ import annotations

import secrets

# gRPC metadata keys are lower case.
REPLICA_TOKEN_METADATA = "x-fleetgate-replica-token"
# The environment variable a launcher hands the token to its children in (config env override).
REPLICA_TOKEN_ENV = "FLEETGATE_REPLICA__AUTH_TOKEN"


def call_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    """The metadata a router sends with every call: the token, or nothing when none is configured."""
    return () if token is None else ((REPLICA_TOKEN_METADATA, token),)


def new_replica_token() -> str:
    """A fresh random token (``fleetgate up`` draws one per run)."""
    return secrets.token_urlsafe(32)
