"""Model state you can see and change: each configured model's state, and loading / unloading it by hand.

A model's state is ``loaded`` (a healthy replica serves it), ``loading`` (the controller starts one: a load
request, a just-in-time request waiting, or replicas being replaced) or ``not-loaded``. ``GET /v1/models``
(``router/meta_routes.py``) shows it beside the replica count.

    POST /v1/models/{model}/load     ask the controller for a replica (as a just-in-time request does)
    POST /v1/models/{model}/unload   drain every replica of the model (in-flight requests finish first) and
                                     keep it unloaded until the next load or request

Both are for API keys with the ``admin`` role (``router/admin``'s check: 401 / 403 ``admin_role_required``),
404 for a model not in the config, answer 202 with the model's object, and are recorded in the audit log
(``model.load`` / ``model.unload``, the target being the model's name). ``fleetgate models list|load|unload``
does the same from the command line, straight on Redis (audited as ``cli:<user>@<host>``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from typing import Any

import redis.asyncio as aioredis
from fastapi import Request
from redis.exceptions import RedisError
from starlette.responses import Response

from fleetgate.core.config import FleetgateConfig, ModelConfig, load_config
from fleetgate.core.demand import ModelState, ModelStateName, read_states, request_load, request_unload
from fleetgate.core.registry import read_all
from fleetgate.router.admin.routes import Admin, _actor
from fleetgate.router.audit import Actor, AuditEntry, AuditLog
from fleetgate.router.dialects.openai_shape import OPENAI_SHAPE
from fleetgate.router.error_responses import dialect_router
from fleetgate.router.errors import model_not_found
from fleetgate.router.http_io import json_response
from fleetgate.router.state import get_state

log = logging.getLogger("fleetgate.router.models")

routes = dialect_router(OPENAI_SHAPE)

# How long a load asked for by hand stands (the model's load timeout when it scales).
DEFAULT_LOAD_SECONDS = 300.0


def model_state(healthy: int, controller: ModelState | None, loading_here: bool) -> ModelStateName:
    """``loaded`` with a healthy replica; ``loading`` while the controller starts one or a request waits for one,
    and also while the controller has one up that this router's registry view does not show yet (a request
    would still wait for it here: it must not read ``not-loaded`` between the two); else ``not-loaded``."""
    if healthy > 0:
        return "loaded"
    if loading_here or (controller is not None and controller.state != "not-loaded"):
        return "loading"
    return "not-loaded"


async def controller_states(redis: aioredis.Redis, models: list[str]) -> dict[str, ModelState]:
    """The controller's state of each model; nothing when Redis does not answer (the registry view still does)."""
    try:
        return await read_states(redis, models)
    except (RedisError, OSError) as exc:
        log.warning("model states unreadable: %s", exc)
        return {}


def _load_seconds(model: ModelConfig) -> float:
    return model.scaling.load_timeout_seconds if model.scaling is not None else DEFAULT_LOAD_SECONDS


async def load(redis: aioredis.Redis, audit: AuditLog, actor: Actor, model: ModelConfig) -> None:
    await request_load(redis, model.name, f"{actor.via}:{actor.name or actor.id}", _load_seconds(model))
    await _record(audit, actor, "model.load", model.name)


async def unload(redis: aioredis.Redis, audit: AuditLog, actor: Actor, model: ModelConfig) -> None:
    await request_unload(redis, model.name, f"{actor.via}:{actor.name or actor.id}")
    await _record(audit, actor, "model.unload", model.name)


async def _record(audit: AuditLog, actor: Actor, action: str, model: str) -> None:
    entry = AuditEntry(actor=actor, action=action, target=model, target_name=model)
    try:
        await audit.append(entry)
    except (RedisError, OSError) as exc:  # the request is made; the log keeps the entry
        log.error("could not append to the audit log (%s): %s", exc, entry.fields())


def _configured(config: FleetgateConfig, name: str) -> ModelConfig:
    try:
        return config.model(name)
    except KeyError:
        raise model_not_found(name) from None


@routes.post("/v1/models/{model_id:path}/load", status_code=202)
async def load_route(model_id: str, request: Request, caller: Admin) -> Response:
    state = get_state(request)
    model = _configured(state.config, model_id)
    await load(state.redis, AuditLog(state.redis, max_entries=state.config.router.audit_max_entries),
               _actor(request, caller), model)
    return json_response({"id": model.name, "object": "model", "action": "load", "requested": True}, status=202)


@routes.post("/v1/models/{model_id:path}/unload", status_code=202)
async def unload_route(model_id: str, request: Request, caller: Admin) -> Response:
    state = get_state(request)
    model = _configured(state.config, model_id)
    await unload(state.redis, AuditLog(state.redis, max_entries=state.config.router.audit_max_entries),
                 _actor(request, caller), model)
    return json_response({"id": model.name, "object": "model", "action": "unload", "requested": True}, status=202)


# -- fleetgate models list|load|unload --------------------------------------------------------------


def add_model_arguments(models_sub: Any, add_config: Any) -> None:
    """The ``list``, ``load`` and ``unload`` subcommands of ``fleetgate models``."""
    listing = models_sub.add_parser("list", help="every configured model, its state and replicas")
    listing.add_argument("--format", choices=("table", "json"), default="table")
    add_config(listing, subcommand=True)
    for verb, text in (("load", "ask the controller for a replica of a model"),
                       ("unload", "drain every replica of a model (in-flight requests finish first)")):
        sub = models_sub.add_parser(verb, help=text)
        sub.add_argument("model")
        add_config(sub, subcommand=True)


async def _cli(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    redis = aioredis.from_url(config.redis_url)
    try:
        if args.models_command == "list":
            names = [m.name for m in config.models]
            records = await read_all(redis)
            states = await read_states(redis, names)
            rows = []
            for name in names:
                healthy = sum(1 for r in records if r.model == name and not r.draining)
                rows.append({"id": name, "state": model_state(healthy, states.get(name), False), "replicas": healthy,
                             "desired_replicas": states[name].desired if name in states else None})
            if args.format == "json":
                print(json.dumps(rows, indent=2))
            else:
                width = max([len("MODEL"), *(len(n) for n in names)])
                print(f"{'MODEL':<{width}}  {'STATE':<10}  REPLICAS  DESIRED")
                for row in rows:
                    desired = "-" if row["desired_replicas"] is None else row["desired_replicas"]
                    print(f"{row['id']:<{width}}  {row['state']:<10}  {row['replicas']:>8}  {desired:>7}")
            return 0
        try:
            model = config.model(args.model)
        except KeyError:
            print(f"error: no model {args.model!r} in the config", file=sys.stderr)
            return 2
        audit = AuditLog(redis, max_entries=config.router.audit_max_entries)
        action = load if args.models_command == "load" else unload
        await action(redis, audit, Actor.cli(), model)
        print(f"{args.models_command} of {model.name} requested")
        return 0
    finally:
        await redis.aclose()


def models_cli(args: argparse.Namespace) -> int:
    return asyncio.run(_cli(args))
