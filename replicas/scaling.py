"""The elastic fleet's decisions, as pure functions: how many replicas each model should run, and whom to evict.

``decide(model, signals, memory, now)`` answers one model's desired replica count from what the routers and
replicas report (``Signals``) and what the controller remembers between ticks (``Memory``: since when the load
has been above or below target, when the model was last asked for). The rules:

- a model without ``scaling`` runs its fixed ``replicas`` (zero after an unload request, until a load request);
- an unload request (newer than any load request) takes a scaling model to zero as well;
- a load request, or requests waiting for a load, give a model with no replica one at once (no delay);
- the load is the larger of the routers' requests (in flight + queued + waiting for a load) and the replicas'
  own running + waiting; ``ceil(load / target_requests_per_replica)`` replicas carry it. More than that many
  (or a TTFT p90 above ``target_ttft_p90_seconds`` while requests queue: one more) for
  ``scale_up_delay_seconds`` adds replicas up to ``max_replicas``; fewer for ``scale_down_delay_seconds``
  removes them, never below one while the model is in use (a model at zero nobody asks for stays there);
- after the idle TTL (a request's ``ttl``, else ``idle_ttl_seconds``) without any request the model goes down
  to ``min_replicas`` (zero: unloaded until its next request).

``pick_eviction`` chooses, when a replica of one model does not fit in the free resources, the least recently
used other model whose just-in-time replicas may go (``scaling.evictable``).

The controller (``replicas/controller.py``) gathers the inputs and applies the answers with Ray.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from fleetgate.core.config import ModelConfig


@dataclass(frozen=True)
class Signals:
    """One model's inputs at one tick."""

    # Replicas the controller runs for the model (starting or up, not draining).
    current: int = 0
    # Requests the routers hold (in flight + queued) and ones waiting for a load.
    router_requests: int = 0
    loading: int = 0
    # Running + waiting sequences the model's replicas report.
    replica_load: int = 0
    # The worst TTFT p90 a router reports (seconds); None: no sample.
    ttft_p90: float | None = None
    # Unix time of the last request a router saw (0: none seen).
    last_request_at: float = 0.0
    # A load request is pending; an unload request is newer than any load request.
    load_requested: bool = False
    unload_requested: bool = False
    # The idle TTL a request's `ttl` set (seconds); None: the config's.
    ttl_override: float | None = None


@dataclass(frozen=True)
class Memory:
    """What the controller remembers of one model between ticks."""

    # Unix time the model was last in use (a request, a load request); the controller's start at first.
    last_active_at: float
    # Since when more (fewer) replicas than running were wanted; None: not now.
    above_since: float | None = None
    below_since: float | None = None


@dataclass(frozen=True)
class Decision:
    desired: int
    memory: Memory
    # The model went idle this tick (its request-set TTL is spent).
    went_idle: bool = False


def initial_replicas(model: ModelConfig) -> int:
    """Replicas started at launch: ``replicas``, within the scaling bounds when the model scales."""
    scaling = model.scaling
    if scaling is None:
        return model.replicas
    return min(max(model.replicas, scaling.min_replicas), scaling.max_replicas)


def wanted_for_load(model: ModelConfig, signals: Signals) -> int:
    """Replicas the current load needs (before delays and bounds): 0 for no load."""
    scaling = model.scaling
    assert scaling is not None
    load = max(signals.router_requests + signals.loading, signals.replica_load)
    if load == 0:
        return 0
    wanted = 1
    if scaling.target_requests_per_replica is not None:
        wanted = math.ceil(load / scaling.target_requests_per_replica)
    if (scaling.target_ttft_p90_seconds is not None and signals.ttft_p90 is not None
            and signals.ttft_p90 > scaling.target_ttft_p90_seconds and load > signals.current):
        wanted = max(wanted, signals.current + 1)  # TTFT over target while requests queue behind the running ones
    return wanted


def decide(model: ModelConfig, signals: Signals, memory: Memory, now: float) -> Decision:
    """The desired replica count of ``model`` now; see the module docstring."""
    scaling = model.scaling
    if scaling is None:
        desired = 0 if signals.unload_requested else model.replicas
        return Decision(desired, memory)
    if signals.unload_requested:
        return Decision(0, Memory(last_active_at=memory.last_active_at))
    in_use = signals.router_requests + signals.loading > 0 or signals.replica_load > 0 or signals.load_requested
    last_active = max(memory.last_active_at, signals.last_request_at, now if in_use else 0.0)
    memory = replace(memory, last_active_at=last_active)
    ttl = signals.ttl_override if signals.ttl_override is not None else scaling.idle_ttl_seconds
    if not in_use and ttl is not None and now - last_active >= ttl:
        desired = scaling.min_replicas
        return Decision(desired, Memory(last_active_at=last_active), went_idle=signals.current > desired)
    # In use, or not idle yet: keep one (an unloaded model nobody asks for stays unloaded).
    floor = max(scaling.min_replicas, 1) if in_use or signals.current > 0 else scaling.min_replicas
    wanted = min(max(wanted_for_load(model, signals), floor), scaling.max_replicas)
    current = signals.current
    if current == 0 and (signals.loading > 0 or signals.load_requested):
        return Decision(wanted, Memory(last_active_at=last_active))  # just in time: no delay
    if wanted > current:
        above = memory.above_since if memory.above_since is not None else now
        memory = Memory(last_active_at=last_active, above_since=above)
        return Decision(wanted if now - above >= scaling.scale_up_delay_seconds else current, memory)
    if wanted < current:
        below = memory.below_since if memory.below_since is not None else now
        memory = Memory(last_active_at=last_active, below_since=below)
        return Decision(wanted if now - below >= scaling.scale_down_delay_seconds else current, memory)
    return Decision(current, Memory(last_active_at=last_active))


@dataclass(frozen=True)
class EvictionCandidate:
    """A model that holds replicas another model's load might need."""

    model: str
    replicas: int
    min_replicas: int
    evictable: bool
    last_request_at: float
    # Requests for it now (a model in use is not evicted).
    requests: int = 0


def fits(need: Mapping[str, float], free: Mapping[str, float]) -> bool:
    """Whether resources ``need`` fit in ``free`` (Ray resource names)."""
    return all(free.get(name, 0.0) + 1e-9 >= amount for name, amount in need.items())


def pick_eviction(for_model: str, candidates: Sequence[EvictionCandidate]) -> str | None:
    """The least recently used other model with a replica above its minimum that may be evicted and is idle."""
    eligible = [c for c in candidates if c.model != for_model and c.evictable and c.replicas > c.min_replicas
                and c.requests == 0]
    if not eligible:
        return None
    return min(eligible, key=lambda c: (c.last_request_at, c.model)).model
