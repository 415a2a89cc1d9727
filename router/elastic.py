"""The router's part in the elastic fleet: it publishes its demand, and loads models just in time.

``Elastic`` publishes this router's ``RouterDemand`` (``fleetgate/core/demand.py``) every second: per
configured model the requests holding or waiting for an admission slot, the ones waiting for a load, the TTFT
p90 of its last minute (``finished`` feeds it) and when its last request arrived (``arrived``).

``ensure_loaded`` is a pipeline step (run by ``router.pipeline.admit`` before the admission queue): a request
for a configured model with ``scaling.jit_load`` and no healthy replica asks the controller for a load (the
``fleetgate:model:load:<model>`` key, refreshed while anyone waits) and waits until the registry shows a replica,
up to ``scaling.load_timeout_seconds``; every request waiting for the same model on this router waits on one
shared load. A load that does not come in time is a 503 ``model_load_timeout`` in the dialect's shape; one whose
replica failed to start (the controller's model state says so) a 503 ``model_load_failed`` naming the error. A
streamed request waits after its response has started (``ctx.load_wait``, awaited by the runner) so that the
client sees keepalives meanwhile: SSE comments on OpenAI's dialects, ``ping`` events on Messages. A request's
``ttl`` (seconds, LM Studio's field, on every dialect) becomes the model's idle TTL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

from fleetgate.core.config import FleetgateConfig, ModelConfig
from fleetgate.core.demand import (
    PUBLISH_SECONDS,
    ModelDemand,
    RouterDemand,
    publish_demand,
    read_states,
    request_load,
    set_idle_ttl,
)
from fleetgate.router.errors import ApiError, ErrorKind

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from fleetgate.router.admission import AdmissionQueue
    from fleetgate.router.pipeline.context import RequestContext
    from fleetgate.router.registry_view import RegistryView
    from fleetgate.router.state import RouterState

log = logging.getLogger("fleetgate.router.elastic")

TTFT_WINDOW_SECONDS = 60.0
# How often a waiting load re-reads the registry (faster than the view's own refresh: the first replica up
# serves at once) and refreshes its load request.
LOAD_POLL_SECONDS = 0.25
LOAD_REFRESH_SECONDS = 1.0


def load_timed_out(model: str, seconds: float, retry_after: int) -> ApiError:
    return ApiError(503, ErrorKind.OVERLOADED, f"Model {model!r} did not load within {seconds:g} s; retry later",
                    retry_after=retry_after, code="model_load_timeout")


def load_failed(model: str, error: str, retry_after: int) -> ApiError:
    return ApiError(503, ErrorKind.OVERLOADED, f"Model {model!r} failed to load: {error}",
                    retry_after=retry_after, code="model_load_failed")


def _p90(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]


class Elastic:
    """This router's demand publisher and just-in-time loads (one per router process)."""

    def __init__(self, config: FleetgateConfig, redis: aioredis.Redis, registry: RegistryView,
                 admission: AdmissionQueue) -> None:
        self.config = config
        self.redis = redis
        self.registry = registry
        self.admission = admission
        self.router_id = f"router-{uuid.uuid4().hex[:8]}"
        self._models = {m.name: m for m in config.models}
        self._last_request: dict[str, float] = {}
        self._ttfts: dict[str, deque[tuple[float, float]]] = {}
        self._loading: dict[str, int] = {}
        self._loads: dict[str, asyncio.Task[str | None]] = {}
        self._task: asyncio.Task[None] | None = None

    # -- demand --------------------------------------------------------------------

    def arrived(self, model: str) -> None:
        if model in self._models:
            self._last_request[model] = time.time()

    def finished(self, model: str, ttft_seconds: float | None) -> None:
        if ttft_seconds is None or model not in self._models:
            return
        samples = self._ttfts.setdefault(model, deque(maxlen=4096))
        samples.append((time.monotonic(), ttft_seconds))

    def demand(self) -> RouterDemand:
        horizon = time.monotonic() - TTFT_WINDOW_SECONDS
        models = {}
        for name in self._models:
            samples = self._ttfts.get(name)
            while samples and samples[0][0] < horizon:
                samples.popleft()
            models[name] = ModelDemand(
                in_flight=self.admission.in_flight(name), queued=self.admission.waiting(name),
                loading=self._loading.get(name, 0), ttft_p90=_p90([t for _, t in samples or ()]),
                last_request_at=self._last_request.get(name, 0.0),
            )
        return RouterDemand(router_id=self.router_id, models=models)

    async def _publish_forever(self) -> None:
        while True:
            try:
                await publish_demand(self.redis, self.demand())
            except (RedisError, OSError) as exc:
                log.warning("could not publish demand: %s", exc)
            await asyncio.sleep(PUBLISH_SECONDS)

    def start(self) -> None:
        if any(m.scaling is not None for m in self._models.values()):
            self._task = asyncio.create_task(self._publish_forever(), name="demand-publisher")

    async def stop(self) -> None:
        for task in [self._task, *self._loads.values()]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    # -- just-in-time loads -----------------------------------------------------------

    def loading_models(self) -> set[str]:
        """Models this router waits for a load of."""
        return {name for name, load in self._loads.items() if not load.done()}

    def needs_load(self, model: str) -> ModelConfig | None:
        """The model's config when a request for it must wait for a load (JIT on, no healthy replica)."""
        config = self._models.get(model)
        if config is None or config.scaling is None or not config.scaling.jit_load:
            return None
        return None if self.registry.healthy(model) else config

    async def wait_loaded(self, config: ModelConfig, until_gone: Callable[[], Awaitable[object]] | None) -> None:
        """Until a replica of ``config`` is healthy (one shared load per model); raises the 503 on timeout and
        ``ClientLeft`` when the client goes away."""
        from fleetgate.router.admission import ClientLeft

        assert config.scaling is not None
        load = self._loads.get(config.name)
        if load is None or load.done():
            load = self._loads[config.name] = asyncio.create_task(self._load(config), name=f"load-{config.name}")
        self._loading[config.name] = self._loading.get(config.name, 0) + 1
        watch = asyncio.ensure_future(until_gone()) if until_gone is not None else None
        try:
            await asyncio.wait([load, watch] if watch else [load], return_when=asyncio.FIRST_COMPLETED)
            if not load.done():
                raise ClientLeft()
            error = load.result()  # a Redis failure of the load is the caller's
        finally:
            self._loading[config.name] -= 1
            if watch is not None:
                watch.cancel()
        if error is not None:
            raise load_failed(config.name, error, self.config.router.retry_after_seconds)
        if not self.registry.healthy(config.name):
            raise load_timed_out(config.name, config.scaling.load_timeout_seconds,
                                 self.config.router.retry_after_seconds)

    async def _load(self, config: ModelConfig) -> str | None:
        """Ask for a load and poll the registry until a replica is healthy or the load timeout passes; returns
        why the load failed when the controller reports a replica start that failed since it began."""
        assert config.scaling is not None
        timeout = config.scaling.load_timeout_seconds
        deadline = time.monotonic() + timeout
        began = time.time()
        refresh_at = 0.0
        log.info("loading model %s just in time", config.name)
        while time.monotonic() < deadline:
            if time.monotonic() >= refresh_at:
                await request_load(self.redis, config.name, "jit", deadline - time.monotonic())
                refresh_at = time.monotonic() + LOAD_REFRESH_SECONDS
                state = (await read_states(self.redis, [config.name])).get(config.name)
                if state is not None and state.load_error and state.load_error_at >= began:
                    log.warning("model %s failed to load: %s", config.name, state.load_error)
                    return state.load_error
            await asyncio.sleep(LOAD_POLL_SECONDS)
            with contextlib.suppress(RedisError, OSError):
                await self.registry.refresh()
            if self.registry.healthy(config.name):
                log.info("model %s loaded", config.name)
                return None
        log.warning("model %s did not load within %g s", config.name, timeout)
        return None

    async def note_ttl(self, model: str, ttl: int | None) -> None:
        """A request's ``ttl`` (seconds) becomes ``model``'s idle TTL."""
        if ttl is not None and model in self._models:
            await set_idle_ttl(self.redis, model, float(ttl))


async def ensure_loaded(ctx: RequestContext, state: RouterState) -> None:
    """Pipeline step: note the request (demand, ``ttl``), and wait for its model's just-in-time load if it needs
    one (a streamed request: after its response started, see the module docstring)."""
    elastic = state.elastic
    assert ctx.request is not None
    if elastic is None:
        return
    model = ctx.request.model
    elastic.arrived(model)
    await elastic.note_ttl(model, getattr(ctx.parsed, "ttl", None))
    config = elastic.needs_load(model)
    if config is None:
        return
    from starlette.requests import Request

    from fleetgate.router.pipeline.fold import _wait_for_disconnect

    http = ctx.http
    until_gone = (lambda: _wait_for_disconnect(http)) if isinstance(http, Request) else None
    wait = elastic.wait_loaded(config, until_gone if not ctx.stream else None)
    if ctx.stream:
        ctx.load_wait = wait
    else:
        await wait
