"""The per-request context: what the pipeline knows about one API call, and what dialects may read when rendering."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from fleetgate.router.rate_limit import Limits


@dataclass
class RequestContext:
    """Facts about one API call that adapters may use when rendering."""

    dialect: str
    # Random id of this call: the canonical request id, and the base of the dialect's public ids.
    request_id: str
    model: str = ""
    stream: bool = False
    # Unix seconds when the request arrived (OpenAI's `created`).
    created: int = field(default_factory=lambda: int(time.time()))
    # The API key that made the call ("" when auth is off), and its own rate limits.
    key_id: str = ""
    key_name: str = ""
    key_limits: Limits = Limits()
    # The replica serving the call, known once it started (updated on a transparent retry).
    replica_id: str = ""
    # The caller asked for the ``stats`` object (router.canonical.stats); the pipeline adds it.
    wants_stats: bool = False
    # Headers the pipeline adds to every answer of the call (the key's rate-limit headers).
    response_headers: dict[str, str] = field(default_factory=dict)
