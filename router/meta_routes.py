"""Routes that are not a dialect: ``/v1/models``, ``/v1/models/{id}``, ``/health``, ``/ready``, ``/metrics``.

Models come from the registry (plus the configured ones, so a model whose
replicas are restarting is still listed, with ``replicas: 0``). Each model is an
OpenAI ``model`` object with extra fields: ``context_length`` (the replicas'
max context, 0 while unknown), ``capabilities`` and ``replicas`` (healthy now).
``/health`` says the router process is up; ``/ready`` that every configured
model has a healthy replica (503 naming the missing ones otherwise).
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Request
from openai.types.model import Model
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from fleetgate.router import metrics
from fleetgate.router.auth import Caller, authenticate
from fleetgate.router.dialects.openai_shape import OPENAI_SHAPE
from fleetgate.router.error_responses import dialect_router
from fleetgate.router.http_io import json_response
from fleetgate.router.registry_view import ModelView
from fleetgate.router.state import get_state

routes = dialect_router(OPENAI_SHAPE)  # an unexpected exception is a 500 in OpenAI's shape on a kept connection


async def require_caller(request: Request) -> Caller:
    state = get_state(request)
    return await authenticate(request, state.keys, required=state.config.router.auth)


def model_object(view: ModelView) -> dict[str, Any]:
    created = int(min((r.started_at for r in view.healthy), default=0))
    model = Model(id=view.name, object="model", created=created, owned_by="fleetgate")
    return {
        **model.model_dump(mode="json", exclude_unset=True),
        "context_length": view.max_context_length,
        "capabilities": view.capabilities.model_dump(),
        "replicas": len(view.healthy),
    }


@routes.get("/v1/models", dependencies=[Depends(require_caller)])
async def list_models(request: Request) -> Response:
    views = get_state(request).registry.models()
    return json_response({"object": "list", "data": [model_object(v) for v in views]})


@routes.get("/v1/models/{model_id:path}", dependencies=[Depends(require_caller)])
async def retrieve_model(model_id: str, request: Request) -> Response:
    state = get_state(request)
    view = state.registry.model(model_id)
    if view is None:
        raise state.dispatcher.unknown_model(model_id)
    return json_response(model_object(view))


@routes.get("/health")
async def health() -> Response:
    return json_response({"status": "ok"})


@routes.get("/ready")
async def ready(request: Request) -> Response:
    missing = get_state(request).registry.missing_models()
    if missing:
        return json_response({"status": "not ready", "missing": missing}, status=503)
    return json_response({"status": "ready"})


@routes.get("/metrics")
async def prometheus_metrics() -> Response:
    return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)
