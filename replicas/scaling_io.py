"""The replica controller's side of ``fleetgate/core/demand.py``: one synchronous read of every model's signals per
scaling tick, and its writes (model states, spent TTLs). Sync Redis: the controller runs in threads, not asyncio."""

from __future__ import annotations

import redis

from fleetgate.core.demand import (
    DEMAND_PREFIX,
    LOAD_PREFIX,
    STATE_PREFIX,
    STATE_TTL_SECONDS,
    TTL_PREFIX,
    UNLOAD_PREFIX,
    ModelRequest,
    ModelState,
    RouterDemand,
)
from fleetgate.core.registry import REPLICA_KEY_PREFIX, ReplicaRecord
from fleetgate.replicas.scaling import Signals


def _values(client: redis.Redis, pattern: str) -> list[bytes | str]:
    keys = list(client.scan_iter(match=pattern, count=500))
    return [v for v in client.mget(keys) if v] if keys else []


def read_signals(client: redis.Redis, models: list[str]) -> dict[str, Signals]:
    """Each of ``models``' signals (``current`` left 0: the controller knows its own replicas)."""
    requests = dict.fromkeys(models, 0)
    loading = dict.fromkeys(models, 0)
    replica_load = dict.fromkeys(models, 0)
    ttft: dict[str, float | None] = dict.fromkeys(models)
    last: dict[str, float] = dict.fromkeys(models, 0.0)
    for raw in _values(client, DEMAND_PREFIX + "*"):
        for name, demand in RouterDemand.model_validate_json(raw).models.items():
            if name not in requests:
                continue
            requests[name] += demand.in_flight + demand.queued
            loading[name] += demand.loading
            last[name] = max(last[name], demand.last_request_at)
            if demand.ttft_p90 is not None:
                ttft[name] = max(ttft[name] or 0.0, demand.ttft_p90)
    for raw in _values(client, REPLICA_KEY_PREFIX + "*"):
        record = ReplicaRecord.model_validate_json(raw)
        if record.model in replica_load and not record.draining:
            replica_load[record.model] += record.load.running + record.load.waiting
    if not models:
        return {}
    loads = client.mget([LOAD_PREFIX + m for m in models])
    unloads = client.mget([UNLOAD_PREFIX + m for m in models])
    ttls = client.mget([TTL_PREFIX + m for m in models])
    signals = {}
    for name, load, unload, ttl in zip(models, loads, unloads, ttls, strict=True):
        load_at = ModelRequest.model_validate_json(load).at if load else None
        unload_at = ModelRequest.model_validate_json(unload).at if unload else None
        signals[name] = Signals(
            router_requests=requests[name], loading=loading[name], replica_load=replica_load[name],
            ttft_p90=ttft[name], last_request_at=last[name],
            load_requested=load_at is not None, unload_requested=unload_at is not None and (
                load_at is None or unload_at > load_at) and loading[name] == 0,
            ttl_override=float(ttl) if ttl else None,
        )
    return signals


def write_states(client: redis.Redis, states: list[ModelState]) -> None:
    pipe = client.pipeline(transaction=False)
    for state in states:
        pipe.set(STATE_PREFIX + state.model, state.model_dump_json(), px=int(STATE_TTL_SECONDS * 1000))
    pipe.execute()


def forget_ttl(client: redis.Redis, model: str) -> None:
    """``model`` went idle: the TTL its requests set is spent (the next request sets its own or none)."""
    client.delete(TTL_PREFIX + model)


def done_loading(client: redis.Redis, model: str) -> None:
    """A replica of ``model`` is up: its load request is answered."""
    client.delete(LOAD_PREFIX + model)
