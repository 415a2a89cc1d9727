"""Where a replica runs in Ray: pure functions from a ``ModelConfig`` to Ray resources.

A GPU replica with ``gpus_per_replica`` N (its tensor-parallel size) gets a
placement group of N one-GPU bundles, ``{"GPU": 1, "CPU": 1}`` each, packed on
one node (``STRICT_PACK``). ``accelerator_type`` (e.g. ``H100``) adds Ray's
accelerator resource ``accelerator_type:H100`` (0.001 per bundle, as Ray's own
``accelerator_type`` option and Ray Train do), which only nodes with that GPU
advertise. The replica actor sits in bundle 0 and captures the group for what it
starts:

- N = 1: the actor takes the bundle's GPU itself and vLLM runs in-process
  (``uni`` executor) on it;
- N > 1: the actor takes only the CPU; vLLM runs with
  ``distributed_executor_backend="ray"`` and, because the actor was scheduled in
  a placement group, ``AsyncEngineArgs.create_engine_config`` picks it up with
  ``ray.util.get_current_placement_group()`` and places one worker per GPU
  bundle.

A CPU replica (N = 0) asks for one CPU, no GPU and no placement group.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fleetgate.core.config import ModelConfig

# Ray's prefix for accelerator resources (ray._common.utils.RESOURCE_CONSTRAINT_PREFIX).
ACCELERATOR_RESOURCE_PREFIX = "accelerator_type:"
# How much of the accelerator resource one bundle / actor asks for (Ray's own convention).
ACCELERATOR_RESOURCE_AMOUNT = 0.001
PLACEMENT_STRATEGY = "STRICT_PACK"


@dataclass(frozen=True)
class ReplicaPlacement:
    """The Ray resources of one replica of a model."""

    # Placement-group bundles; empty for CPU replicas (no placement group).
    bundles: list[dict[str, float]] = field(default_factory=list)
    strategy: str | None = None
    # Resources of the replica actor itself (num_cpus, num_gpus, resources).
    actor_resources: dict[str, Any] = field(default_factory=dict)
    # Engine arguments the placement implies (merged over the model's engine_args).
    engine_args: dict[str, Any] = field(default_factory=dict)

    @property
    def uses_placement_group(self) -> bool:
        return bool(self.bundles)


def accelerator_resource(accelerator_type: str) -> str:
    """Ray's resource name for an accelerator type, e.g. ``accelerator_type:H100``."""
    return f"{ACCELERATOR_RESOURCE_PREFIX}{accelerator_type}"


def replica_placement(model: ModelConfig) -> ReplicaPlacement:
    """Bundles, strategy, actor resources and engine arguments for one replica of ``model``."""
    gpus = model.gpus_per_replica
    if gpus == 0:
        if model.accelerator_type:
            raise ValueError(f"model {model.name!r}: accelerator_type needs gpus_per_replica >= 1")
        return ReplicaPlacement(actor_resources={"num_cpus": 1, "num_gpus": 0})
    bundle: dict[str, float] = {"GPU": 1, "CPU": 1}
    if model.accelerator_type:
        bundle[accelerator_resource(model.accelerator_type)] = ACCELERATOR_RESOURCE_AMOUNT
    owns_gpu = gpus == 1
    actor_resources: dict[str, Any] = {"num_cpus": 1, "num_gpus": 1 if owns_gpu else 0}
    if owns_gpu and model.accelerator_type:
        actor_resources["resources"] = {accelerator_resource(model.accelerator_type): ACCELERATOR_RESOURCE_AMOUNT}
    engine_args: dict[str, Any] = {"tensor_parallel_size": gpus}
    if gpus > 1:
        engine_args["distributed_executor_backend"] = "ray"
    return ReplicaPlacement(
        bundles=[dict(bundle) for _ in range(gpus)],
        strategy=PLACEMENT_STRATEGY,
        actor_resources=actor_resources,
        engine_args=engine_args,
    )


def placed_model(model: ModelConfig) -> ModelConfig:
    """``model`` with the engine arguments its placement implies (tensor parallelism, executor)."""
    placement = replica_placement(model)
    if model.engine != "vllm" or not placement.engine_args:
        return model
    return model.model_copy(update={"engine_args": {**model.engine_args, **placement.engine_args}})


def replica_resources(model: ModelConfig) -> dict[str, float]:
    """The Ray resources one replica of ``model`` takes in all (its bundles, or its actor's), by Ray's names."""
    placement = replica_placement(model)
    total: dict[str, float] = {}
    if placement.uses_placement_group:
        for bundle in placement.bundles:
            for name, amount in bundle.items():
                total[name] = total.get(name, 0.0) + amount
        return total
    resources = placement.actor_resources
    total = {"CPU": float(resources.get("num_cpus", 0)), "GPU": float(resources.get("num_gpus", 0))}
    total.update(resources.get("resources", {}))
    return {name: amount for name, amount in total.items() if amount}


def actor_runtime_env(model: ModelConfig) -> dict[str, Any]:
    """The actor's runtime environment: the model's ``env`` (e.g. ``VLLM_CPU_KVCACHE_SPACE``)."""
    return {"env_vars": dict(model.env)} if model.env else {}


def actor_options(model: ModelConfig, placement_group: Any | None = None) -> dict[str, Any]:
    """Options for ``ReplicaActor.options(...)``: resources, runtime env and, for GPU replicas,
    scheduling into bundle 0 of ``placement_group`` with child tasks captured (vLLM's workers)."""
    placement = replica_placement(model)
    options: dict[str, Any] = dict(placement.actor_resources)
    runtime_env = actor_runtime_env(model)
    if runtime_env:
        options["runtime_env"] = runtime_env
    if placement.uses_placement_group:
        if placement_group is None:
            raise ValueError(f"model {model.name!r} needs a placement group ({len(placement.bundles)} GPU bundles)")
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        options["scheduling_strategy"] = PlacementGroupSchedulingStrategy(
            placement_group=placement_group,
            placement_group_bundle_index=0,
            placement_group_capture_child_tasks=True,
        )
    return options
