"""The router's FastAPI application: lifespan wiring (Redis pool, registry watcher, gRPC channels,
routing, keys) and routes.

Each dialect contributes an ``APIRouter`` (``routes`` in its ``routes.py``, made
with ``router.error_responses.dialect_router``, so its errors are in its shape);
add it to ``ROUTES`` below. Errors of paths no dialect's route matches are in
OpenAI's shape, or Anthropic's under the Messages dialect's path space.

If ``FLEETGATE_BOOTSTRAP_KEY`` is set, that key is registered at startup under the
name ``bootstrap`` with the ``admin`` role (idempotently: every router of a deployment
does it, the Helm chart passes it from a Secret; a bootstrap key registered by an
earlier version as a user key becomes admin). The admin API (``router/admin``) is
among the ``ROUTES``.

The surface beyond the API is closed by default: the interactive docs (``/docs``,
``/redoc``, ``/openapi.json``) are served only with auth off (``router.docs``
overrides), CORS headers only for ``router.cors_allow_origins``, and with
``router.metrics_port`` ``/metrics`` moves to a port of its own
(``router/metrics_port.py``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from fastapi import APIRouter, FastAPI
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import BusyLoadingError
from redis.exceptions import ConnectionError as RedisConnectionError
from starlette.middleware.cors import CORSMiddleware

from fleetgate.core.config import FleetgateConfig
from fleetgate.router.admin.routes import routes as admin_routes
from fleetgate.router.admission import AdmissionQueue
from fleetgate.router.audit import AuditLog
from fleetgate.router.auth import KeyStore
from fleetgate.router.channel_pool import replica_channels
from fleetgate.router.dialects.chat.routes import routes as chat_routes
from fleetgate.router.dialects.completions.routes import routes as completions_routes
from fleetgate.router.dialects.embeddings.routes import routes as embeddings_routes
from fleetgate.router.dialects.messages.dialect import MESSAGES
from fleetgate.router.dialects.messages.routes import PATH_SPACE as MESSAGES_PATH_SPACE
from fleetgate.router.dialects.messages.routes import routes as messages_routes
from fleetgate.router.dialects.openai_shape import OPENAI_SHAPE
from fleetgate.router.dialects.responses.routes import routes as responses_routes
from fleetgate.router.dialects.responses.websocket import routes as responses_websocket_routes
from fleetgate.router.dispatch import Dispatcher
from fleetgate.router.elastic import Elastic
from fleetgate.router.error_responses import install_error_handlers
from fleetgate.router.http_io import REPLICA_HEADER
from fleetgate.router.key_admin import KeyAdmin
from fleetgate.router.meta_routes import routes as meta_routes
from fleetgate.router.metrics_port import serve_metrics
from fleetgate.router.model_admin import routes as model_admin_routes
from fleetgate.router.rate_limit_store import RateLimiter
from fleetgate.router.registry_view import RegistryView
from fleetgate.router.routing.factory import PolicyParts, routing_policy
from fleetgate.router.routing.in_flight import InFlight
from fleetgate.router.server_tools.toolboxes import Toolboxes
from fleetgate.router.state import RouterState
from fleetgate.router.tracing import RouterTracing
from fleetgate.router.usage.key_labels import KeyLabels
from fleetgate.router.usage.ledger import UsageLedger

log = logging.getLogger("fleetgate.router")

BOOTSTRAP_KEY_ENV = "FLEETGATE_BOOTSTRAP_KEY"

ROUTES: list[APIRouter] = [
    meta_routes, chat_routes, completions_routes, messages_routes, responses_routes, responses_websocket_routes,
    embeddings_routes, admin_routes, model_admin_routes,
]

# A Redis that is down refuses at once; one that vanished must not hang requests: they get a 503 instead.
REDIS_CONNECT_TIMEOUT_SECONDS = 2.0
REDIS_COMMAND_TIMEOUT_SECONDS = 5.0
REDIS_RETRIES = 3
REDIS_RETRY_CAP_SECONDS = 0.2
# After a Redis outage, the last registry view bridges this many heartbeats (router/registry_view.py).
REGISTRY_GRACE_HEARTBEATS = 2


async def register_bootstrap_key(admin: KeyAdmin, environ: dict[str, str] | os._Environ[str] = os.environ) -> None:
    secret = environ.get(BOOTSTRAP_KEY_ENV, "").strip()
    if not secret:
        return
    info, outcome = await admin.bootstrap(secret)
    log.info("bootstrap API key %s: %s", info.id if info else "?", outcome)


def create_app(config: FleetgateConfig) -> FastAPI:
    settings = config.router

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis = aioredis.from_url(
            config.redis_url,
            socket_connect_timeout=REDIS_CONNECT_TIMEOUT_SECONDS,
            socket_timeout=REDIS_COMMAND_TIMEOUT_SECONDS,
            # A command on a pooled connection Redis closed when it restarted, or sent while it still loads
            # its AOF, is tried again on a fresh connection a moment later instead of failing the request.
            retry=Retry(ExponentialBackoff(cap=REDIS_RETRY_CAP_SECONDS, base=0.02), REDIS_RETRIES),
            retry_on_error=[RedisConnectionError, BusyLoadingError],
        )
        channels = replica_channels(config.replica.auth_token)
        tracing = RouterTracing.from_config(config)  # None unless tracing.enabled
        registry = RegistryView(
            redis,
            configured_models=config.models,
            refresh_seconds=settings.registry_refresh_seconds,
            quarantine_seconds=config.replica.registry_ttl_seconds + settings.registry_refresh_seconds,
            on_addresses=channels.retain,
            grace_seconds=(REGISTRY_GRACE_HEARTBEATS * config.replica.heartbeat_seconds
                           + settings.registry_refresh_seconds),
        )
        in_flight = InFlight()
        routing = routing_policy(PolicyParts(config, in_flight, redis, channels))
        keys = KeyStore(redis)
        rate_limiter = RateLimiter.from_settings(redis, settings)
        usage = UsageLedger(redis, retention_days=settings.usage.retention_days, window_ms=rate_limiter.window_ms,
                            flush_seconds=settings.usage.flush_seconds)
        admission = AdmissionQueue(settings.admission, registry.healthy,
                                   recheck_seconds=settings.registry_refresh_seconds)
        elastic = Elastic(config, redis, registry, admission)  # demand and just-in-time loads (router.elastic)
        toolboxes = Toolboxes(redis, auth_token=config.replica.auth_token,
                              call_timeout_seconds=config.tools.call_timeout_seconds,
                              list_timeout_seconds=config.tools.mcp_timeout_seconds) if config.tools.enabled else None
        app.state.fleetgate = RouterState(
            config=config,
            redis=redis,
            registry=registry,
            channels=channels,
            routing=routing,
            in_flight=in_flight,
            dispatcher=Dispatcher(
                registry, routing, in_flight, channels, retry_after_seconds=settings.retry_after_seconds
            ),
            keys=keys,
            rate_limiter=rate_limiter,
            admission=admission,
            usage=usage,
            key_labels=KeyLabels(settings.usage.metrics_max_keys),
            tracing=tracing,
            elastic=elastic,
            server_tools=toolboxes,
        )
        with serve_metrics(settings):
            try:
                await register_bootstrap_key(
                    KeyAdmin(keys, AuditLog(redis, max_entries=settings.audit_max_entries)))
                await registry.start()
                elastic.start()
                yield
            finally:
                await elastic.stop()
                await usage.drain()
                await registry.stop()
                await channels.close()
                if toolboxes is not None:
                    await toolboxes.close()
                await redis.aclose()
                if tracing is not None:
                    await tracing.shutdown()  # the spans still queued are exported

    docs = settings.docs if settings.docs is not None else not settings.auth
    app = FastAPI(
        title="fleetgate router", lifespan=lifespan, docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None, openapi_url="/openapi.json" if docs else None,
    )
    if settings.cors_allow_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=settings.cors_allow_origins, allow_methods=["*"], allow_headers=["*"],
            expose_headers=[REPLICA_HEADER, "retry-after"],
        )
    install_error_handlers(app, default=OPENAI_SHAPE, path_spaces={MESSAGES_PATH_SPACE: MESSAGES},
                           retry_after_seconds=settings.retry_after_seconds)
    for routes in ROUTES:
        app.include_router(routes)
    return app
