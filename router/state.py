"""What one router process holds while it runs.

Config, Redis pool, registry view, channels, routing, dispatcher, keys, rate limiter, admission queue, usage ledger,
the toolboxes of server-side tools.

Nothing here is state another router would need: the registry and the keys are
read from Redis; in-flight counts and quarantined replicas are this router's own
view. ``get_state`` finds it from a request or a WebSocket (``app.state.fleetgate``).
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis
from starlette.requests import HTTPConnection

from fleetgate.core.config import FleetgateConfig
from fleetgate.router.admission import AdmissionQueue
from fleetgate.router.auth import KeyStore
from fleetgate.router.channel_pool import ReplicaChannels
from fleetgate.router.dispatch import Dispatcher
from fleetgate.router.elastic import Elastic
from fleetgate.router.rate_limit_store import RateLimiter
from fleetgate.router.registry_view import RegistryView
from fleetgate.router.request_metrics import UNKNOWN_MODEL_LABEL
from fleetgate.router.routing.in_flight import InFlight
from fleetgate.router.routing.policy import RoutingPolicy
from fleetgate.router.server_tools.toolboxes import Toolboxes
from fleetgate.router.tracing import RouterTracing
from fleetgate.router.usage.key_labels import KeyLabels
from fleetgate.router.usage.ledger import UsageLedger


@dataclass
class RouterState:
    config: FleetgateConfig
    redis: aioredis.Redis
    registry: RegistryView
    channels: ReplicaChannels
    routing: RoutingPolicy
    in_flight: InFlight
    dispatcher: Dispatcher
    keys: KeyStore
    rate_limiter: RateLimiter
    admission: AdmissionQueue
    usage: UsageLedger
    # Bounded key_id labels of the per-key metrics (router.usage.metrics_max_keys).
    key_labels: KeyLabels
    # Request traces (router.tracing) while tracing.enabled; None: off, nothing traced.
    tracing: RouterTracing | None = None
    # The elastic fleet's demand publisher and just-in-time loads (router.elastic); None: not wired.
    elastic: Elastic | None = None
    # The toolboxes server-side tools run on (router.server_tools) while tools.enabled; None: off.
    server_tools: Toolboxes | None = None

    def model_label(self, model: str) -> str:
        """A bounded metrics label for a requested model name."""
        return model if self.registry.serves(model) else UNKNOWN_MODEL_LABEL


def get_state(request: HTTPConnection) -> RouterState:
    state: RouterState = request.app.state.fleetgate
    return state
