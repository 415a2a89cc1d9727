"""Routes that are not a dialect: ``/v1/models``, ``/v1/models/{id}``, ``/health``, ``/ready``, ``/metrics``.

Models come from the registry (plus the configured ones, so a model whose
replicas are restarting, or that is not loaded, is still listed, with ``replicas: 0``). Each model is an
OpenAI ``model`` object with extra fields: ``context_length`` (the replicas'
max context, 0 while unknown), ``capabilities``, ``replicas`` (healthy now), ``state`` (``loaded``,
``loading``, ``not-loaded``: ``router/model_admin.py``) and ``desired_replicas`` (the controller's target;
null without a controller). Loading and unloading by hand: ``router/model_admin.py``.
``/health`` says the router process is up (liveness); ``/ready`` that Redis
answers (API keys, rate limits, stored responses and the registry live there) and
every configured model has a healthy replica (503 saying which is not otherwise; an elastic model, with a
``scaling`` section, is not required: it may be unloaded, and a request loads it).
``/metrics`` needs ``Authorization: Bearer <router.metrics_key>`` when one is set,
and is not served here when ``router.metrics_port`` moves it to a port of its own.
"""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import Depends, Request
from openai.types.model import Model
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from fleetgate.core.demand import ModelState
from fleetgate.router import metrics
from fleetgate.router.auth import Caller, authenticate
from fleetgate.router.dialects.openai_shape import OPENAI_SHAPE
from fleetgate.router.error_responses import dialect_router
from fleetgate.router.errors import authentication_failed, not_found
from fleetgate.router.http_io import json_response
from fleetgate.router.model_admin import controller_states, model_state
from fleetgate.router.redis_reachability import redis_answers, unreachable_message
from fleetgate.router.registry_view import ModelView
from fleetgate.router.state import RouterState, get_state

routes = dialect_router(OPENAI_SHAPE)  # an unexpected exception is a 500 in OpenAI's shape on a kept connection


async def require_caller(request: Request) -> Caller:
    state = get_state(request)
    return await authenticate(request, state.keys, required=state.config.router.auth)


def model_object(view: ModelView, controller: ModelState | None = None, loading_here: bool = False) -> dict[str, Any]:
    created = int(min((r.started_at for r in view.healthy), default=0))
    model = Model(id=view.name, object="model", created=created, owned_by="fleetgate")
    return {
        **model.model_dump(mode="json", exclude_unset=True),
        "context_length": view.max_context_length,
        "capabilities": view.capabilities.model_dump(),
        "replicas": len(view.healthy),
        "state": model_state(len(view.healthy), controller, loading_here),
        "desired_replicas": controller.desired if controller is not None else None,
    }


async def _model_objects(state: RouterState, views: list[ModelView]) -> list[dict[str, Any]]:
    controller = await controller_states(state.redis, [v.name for v in views])
    loading = state.elastic.loading_models() if state.elastic is not None else set()
    return [model_object(v, controller.get(v.name), v.name in loading) for v in views]


@routes.get("/v1/models", dependencies=[Depends(require_caller)])
async def list_models(request: Request) -> Response:
    state = get_state(request)
    return json_response({"object": "list", "data": await _model_objects(state, state.registry.models())})


@routes.get("/v1/models/{model_id:path}", dependencies=[Depends(require_caller)])
async def retrieve_model(model_id: str, request: Request) -> Response:
    state = get_state(request)
    view = state.registry.model(model_id)
    if view is None:
        raise state.dispatcher.unknown_model(model_id)
    (answer,) = await _model_objects(state, [view])
    return json_response(answer)


@routes.get("/health")
async def health() -> Response:
    return json_response({"status": "ok"})


@routes.get("/ready")
async def ready(request: Request) -> Response:
    state = get_state(request)
    if not await redis_answers(state.redis):
        return json_response({"status": "not ready", "reason": unreachable_message(state.config.redis_url)}, status=503)
    missing = state.registry.missing_models()
    if missing:
        return json_response({"status": "not ready", "missing": missing}, status=503)
    return json_response({"status": "ready"})


@routes.get("/metrics")
async def prometheus_metrics(request: Request) -> Response:
    settings = get_state(request).config.router
    if settings.metrics_port is not None:
        raise not_found("Not found: /metrics")  # served on the metrics port, not named to API clients
    if settings.metrics_key is not None and not hmac.compare_digest(
        request.headers.get("authorization", "").encode(), f"Bearer {settings.metrics_key}".encode()
    ):
        raise authentication_failed("/metrics needs 'Authorization: Bearer <router.metrics_key>'")
    return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)
