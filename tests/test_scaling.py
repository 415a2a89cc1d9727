"""The elastic fleet's pure decisions (replicas/scaling.py) on a hand-moved clock: no Redis, no Ray."""

from __future__ import annotations

import pytest

from fleetgate.core.config import ModelConfig, ScalingConfig
from fleetgate.core.demand import ModelState
from fleetgate.replicas.placement import replica_resources
from fleetgate.replicas.scaling import (
    EvictionCandidate,
    Memory,
    Signals,
    decide,
    fits,
    initial_replicas,
    pick_eviction,
)
from fleetgate.router.model_admin import model_state

T0 = 1_000_000.0


def elastic(**scaling: object) -> ModelConfig:
    return ModelConfig(name="m", engine="sim", scaling=ScalingConfig.model_validate(scaling))


def run(model: ModelConfig, ticks: list[tuple[float, Signals]]) -> list[int]:
    """The desired counts over ``ticks`` (offset from T0, signals), the memory carried along."""
    memory = Memory(last_active_at=T0)
    out = []
    for offset, signals in ticks:
        decision = decide(model, signals, memory, T0 + offset)
        memory = decision.memory
        out.append(decision.desired)
    return out


def test_without_scaling_the_fixed_count_stands_whatever_the_load() -> None:
    model = ModelConfig(name="m", engine="sim", replicas=3)
    assert initial_replicas(model) == 3
    assert run(model, [(0, Signals(current=3, router_requests=500)), (9999, Signals(current=3))]) == [3, 3]
    assert decide(model, Signals(current=3, unload_requested=True), Memory(T0), T0).desired == 0


def test_load_above_target_adds_replicas_after_the_delay_up_to_the_maximum() -> None:
    model = elastic(min_replicas=1, max_replicas=4, target_requests_per_replica=4, scale_up_delay_seconds=5)
    busy = Signals(current=1, router_requests=10)  # 10 requests / 4 per replica: 3 replicas
    assert run(model, [(0, busy), (4, busy), (5, busy)]) == [1, 1, 3]
    flood = Signals(current=3, router_requests=100)
    assert run(model, [(0, flood), (5, flood)]) == [3, 4]


def test_the_replicas_own_load_counts_when_larger_than_the_routers() -> None:
    model = elastic(max_replicas=8, target_requests_per_replica=2)
    assert decide(model, Signals(current=1, router_requests=1, replica_load=7), Memory(T0), T0).desired == 4


def test_ttft_above_target_adds_one_while_requests_queue() -> None:
    model = elastic(max_replicas=5, target_requests_per_replica=None, target_ttft_p90_seconds=0.5)
    slow = Signals(current=2, router_requests=6, ttft_p90=0.9)
    assert decide(model, slow, Memory(T0), T0).desired == 3
    fast = Signals(current=2, router_requests=6, ttft_p90=0.2)
    assert decide(model, fast, Memory(T0), T0).desired == 2  # at target: no change (and not below one in use)


def test_load_below_target_removes_replicas_after_the_delay_but_keeps_one_in_use() -> None:
    model = elastic(max_replicas=4, target_requests_per_replica=4, scale_down_delay_seconds=30, idle_ttl_seconds=600)
    light = Signals(current=4, router_requests=2)
    assert run(model, [(0, light), (29, light), (30, light)]) == [4, 4, 1]
    quiet = Signals(current=4, last_request_at=T0)
    assert run(model, [(0, quiet), (30, quiet)]) == [4, 1]  # no request now, not idle yet: one stays


def test_idle_past_the_ttl_goes_to_min_replicas_and_a_request_ttl_overrides() -> None:
    model = elastic(max_replicas=2, idle_ttl_seconds=60)
    quiet = Signals(current=1, last_request_at=T0)
    memory = Memory(last_active_at=T0)
    assert decide(model, quiet, memory, T0 + 59).desired == 1
    gone = decide(model, quiet, memory, T0 + 60)
    assert (gone.desired, gone.went_idle) == (0, True)
    short = Signals(current=1, last_request_at=T0, ttl_override=5)
    assert decide(model, short, memory, T0 + 5).desired == 0
    kept = elastic(min_replicas=1, max_replicas=2, idle_ttl_seconds=60)
    assert decide(kept, quiet, memory, T0 + 600).desired == 1


def test_a_request_waiting_for_a_load_starts_one_at_once() -> None:
    model = elastic(max_replicas=3, target_requests_per_replica=1, scale_up_delay_seconds=30)
    assert decide(model, Signals(current=0, loading=1), Memory(T0 - 9999), T0).desired == 1
    assert decide(model, Signals(current=0, loading=2), Memory(T0 - 9999), T0).desired == 2
    assert decide(model, Signals(current=0, load_requested=True), Memory(T0 - 9999), T0).desired == 1


def test_an_unloaded_model_nobody_asks_for_stays_unloaded() -> None:
    model = elastic(min_replicas=0, max_replicas=3, idle_ttl_seconds=600)
    assert decide(model, Signals(current=0), Memory(T0), T0 + 1).desired == 0
    assert decide(elastic(min_replicas=1, max_replicas=3), Signals(current=0), Memory(T0), T0 + 1).desired == 1


def test_an_unload_request_takes_it_to_zero_whatever_its_minimum() -> None:
    model = elastic(min_replicas=2, max_replicas=3)
    assert decide(model, Signals(current=2, unload_requested=True, router_requests=5), Memory(T0), T0).desired == 0


def test_eviction_picks_the_least_recently_used_idle_evictable_model() -> None:
    candidates = [
        EvictionCandidate("old-busy", 1, 0, True, last_request_at=1.0, requests=3),
        EvictionCandidate("old-pinned", 1, 0, False, last_request_at=2.0),
        EvictionCandidate("at-min", 1, 1, True, last_request_at=3.0),
        EvictionCandidate("older", 1, 0, True, last_request_at=4.0),
        EvictionCandidate("newer", 2, 0, True, last_request_at=5.0),
    ]
    assert pick_eviction("wanted", candidates) == "older"
    assert pick_eviction("older", candidates) == "newer"
    assert pick_eviction("wanted", candidates[:3]) is None


@pytest.mark.parametrize(("gpus", "need"), [(0, {"CPU": 1.0}), (1, {"CPU": 1.0, "GPU": 1.0}),
                                            (4, {"CPU": 4.0, "GPU": 4.0})])
def test_a_replica_fits_only_where_its_resources_are_free(gpus: int, need: dict[str, float]) -> None:
    model = ModelConfig(name="m", engine="vllm", model="x", gpus_per_replica=gpus)
    assert replica_resources(model) == need
    assert fits(need, {"CPU": 8.0, "GPU": 4.0})
    assert not fits(need, {"CPU": 8.0, "GPU": 0.5}) or gpus == 0


def test_scaling_bounds_are_checked_and_the_launch_count_clamped() -> None:
    with pytest.raises(ValueError, match="max_replicas"):
        ScalingConfig(min_replicas=3, max_replicas=2)
    model = ModelConfig(name="m", engine="sim", replicas=5, scaling=ScalingConfig(max_replicas=2))
    assert initial_replicas(model) == 2


def test_model_state_names() -> None:
    assert model_state(1, None, False) == "loaded"
    assert model_state(0, ModelState(model="m", desired=1), False) == "loading"
    # Up on the controller, not yet in this router's registry view: still loading, never not-loaded between.
    assert model_state(0, ModelState(model="m", desired=1, up=1), False) == "loading"
    assert model_state(0, ModelState(model="m", desired=0), True) == "loading"
    assert model_state(0, ModelState(model="m", desired=0), False) == "not-loaded"
    assert model_state(0, None, False) == "not-loaded"
