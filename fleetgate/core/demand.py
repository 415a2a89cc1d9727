"""What routers ask of the replica controller, and what it answers, in Redis: the elastic fleet's shared schema.

Routers → controller:

- ``fleetgate:demand:<router_id>``: one JSON ``RouterDemand`` per router, rewritten every
  ``PUBLISH_SECONDS`` with a TTL of ``DEMAND_TTL_SECONDS`` (a router that died stops counting): per model the
  requests it holds in flight and queued, the ones waiting for a load, its TTFT p90 over the last minute and
  when its last request for the model arrived;
- ``fleetgate:model:load:<model>``: a load request (JSON ``ModelRequest``), set by a request that found no
  replica (just in time) or by ``POST /v1/models/{model}/load`` / ``fleetgate models load``; it expires after
  the model's load timeout. Setting it deletes the model's unload request;
- ``fleetgate:model:unload:<model>``: an unload request (``/unload``, ``fleetgate models unload``): the controller
  drains every replica of the model and keeps it at zero until the next load request;
- ``fleetgate:model:ttl:<model>``: the idle TTL (seconds) the latest request's ``ttl`` field set; the
  controller deletes it when the model goes idle.

Controller → routers: ``fleetgate:model:state:<model>``, a JSON ``ModelState`` (desired / starting / up /
draining counts) rewritten every scaling tick with a TTL of ``STATE_TTL_SECONDS``.

The writers here are async (routers); the controller's sync reads are in ``replicas/scaling_io.py``.
"""

from __future__ import annotations

import time
from typing import Literal

import redis.asyncio as aioredis
from pydantic import BaseModel, Field

DEMAND_PREFIX = "fleetgate:demand:"
LOAD_PREFIX = "fleetgate:model:load:"
UNLOAD_PREFIX = "fleetgate:model:unload:"
TTL_PREFIX = "fleetgate:model:ttl:"
STATE_PREFIX = "fleetgate:model:state:"
PUBLISH_SECONDS = 1.0
DEMAND_TTL_SECONDS = 5.0
STATE_TTL_SECONDS = 10.0

ModelStateName = Literal["loaded", "loading", "not-loaded"]


class ModelDemand(BaseModel):
    """One router's demand for one model."""

    # Requests holding an admission slot, and waiting in the admission queue.
    in_flight: int = 0
    queued: int = 0
    # Requests waiting for the model to load (no replica up).
    loading: int = 0
    # TTFT p90 (seconds) over the router's last minute of this model's requests; None: no sample.
    ttft_p90: float | None = None
    # Unix time of the last request for the model this router saw.
    last_request_at: float = 0.0

    @property
    def requests(self) -> int:
        return self.in_flight + self.queued + self.loading


class RouterDemand(BaseModel):
    router_id: str
    at: float = Field(default_factory=time.time)
    models: dict[str, ModelDemand] = Field(default_factory=dict)


class ModelRequest(BaseModel):
    """A load or unload request: who asked (``jit``, ``api:<key name>``, ``cli:user@host``) and when."""

    by: str
    at: float = Field(default_factory=time.time)


class ModelState(BaseModel):
    """What the controller does with one model (its own count, beside what the registry shows)."""

    model: str
    desired: int = 0
    starting: int = 0
    up: int = 0
    draining: int = 0
    # The last replica start that failed (unix time, the error), until one starts.
    load_error: str = ""
    load_error_at: float = 0.0
    at: float = Field(default_factory=time.time)

    @property
    def state(self) -> ModelStateName:
        if self.up > 0:
            return "loaded"
        return "loading" if self.starting > 0 or self.desired > 0 else "not-loaded"


async def publish_demand(redis: aioredis.Redis, demand: RouterDemand) -> None:
    await redis.set(DEMAND_PREFIX + demand.router_id, demand.model_dump_json(), px=int(DEMAND_TTL_SECONDS * 1000))


async def request_load(redis: aioredis.Redis, model: str, by: str, timeout_seconds: float) -> None:
    """Ask the controller for a replica of ``model`` (for ``timeout_seconds``); cancels an unload request."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.set(LOAD_PREFIX + model, ModelRequest(by=by).model_dump_json(), px=max(1, int(timeout_seconds * 1000)))
        pipe.delete(UNLOAD_PREFIX + model)
        await pipe.execute()


async def request_unload(redis: aioredis.Redis, model: str, by: str) -> None:
    """Ask the controller to drain every replica of ``model`` and keep it unloaded until the next load."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.set(UNLOAD_PREFIX + model, ModelRequest(by=by).model_dump_json())
        pipe.delete(LOAD_PREFIX + model, TTL_PREFIX + model)
        await pipe.execute()


async def set_idle_ttl(redis: aioredis.Redis, model: str, ttl_seconds: float) -> None:
    """The idle TTL a request's ``ttl`` field sets for ``model`` (until it goes idle)."""
    await redis.set(TTL_PREFIX + model, repr(float(ttl_seconds)))


async def read_states(redis: aioredis.Redis, models: list[str]) -> dict[str, ModelState]:
    """The controller's latest state of each of ``models`` that has one."""
    if not models:
        return {}
    values = await redis.mget([STATE_PREFIX + m for m in models])
    return {m: ModelState.model_validate_json(v) for m, v in zip(models, values, strict=True) if v}
