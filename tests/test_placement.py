"""Ray placement specs generated from the config: 1×H100, TP=4 on H100, CPU replicas."""

from __future__ import annotations

from typing import Any

import pytest
import ray
from ray._common.utils import RESOURCE_CONSTRAINT_PREFIX
from ray.util.accelerators import NVIDIA_H100
from ray.util.placement_group import PlacementGroup
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from fleetgate.core.config import ModelConfig
from fleetgate.replicas.placement import accelerator_resource, actor_options, placed_model, replica_placement

H100 = f"{RESOURCE_CONSTRAINT_PREFIX}{NVIDIA_H100}"


def gpu_model(gpus: int, **extra) -> ModelConfig:
    return ModelConfig(
        name="big", engine="vllm", model="/models/big", gpus_per_replica=gpus, accelerator_type=NVIDIA_H100,
        engine_args={"max_model_len": 8192}, env={"HF_HOME": "/cache"}, **extra,
    )


def some_placement_group() -> PlacementGroup:
    return PlacementGroup(ray.PlacementGroupID.from_random())


def test_accelerator_resource_uses_rays_name():
    assert accelerator_resource("H100") == H100 == "accelerator_type:H100"


def test_one_h100_replica():
    placement = replica_placement(gpu_model(1))
    assert placement.bundles == [{"GPU": 1, "CPU": 1, H100: 0.001}]
    assert placement.strategy == "STRICT_PACK"
    assert placement.actor_resources == {"num_cpus": 1, "num_gpus": 1, "resources": {H100: 0.001}}
    assert placement.engine_args == {"tensor_parallel_size": 1}


def test_tensor_parallel_4_on_h100():
    placement = replica_placement(gpu_model(4))
    assert placement.bundles == [{"GPU": 1, "CPU": 1, H100: 0.001}] * 4
    assert placement.strategy == "STRICT_PACK"
    # the actor only coordinates; vLLM's Ray workers take the four GPUs
    assert placement.actor_resources == {"num_cpus": 1, "num_gpus": 0}
    assert placement.engine_args == {"tensor_parallel_size": 4, "distributed_executor_backend": "ray"}
    assert placed_model(gpu_model(4)).engine_args == {
        "max_model_len": 8192, "tensor_parallel_size": 4, "distributed_executor_backend": "ray",
    }


def test_gpu_actor_is_scheduled_in_bundle_0_capturing_child_tasks():
    group = some_placement_group()
    options = actor_options(gpu_model(4), group)
    strategy = options["scheduling_strategy"]
    assert isinstance(strategy, PlacementGroupSchedulingStrategy)
    assert strategy.placement_group == group
    assert strategy.placement_group_bundle_index == 0
    assert strategy.placement_group_capture_child_tasks is True
    assert options["runtime_env"] == {"env_vars": {"HF_HOME": "/cache"}}


def test_cpu_replica_asks_for_no_gpu_and_no_placement_group():
    model = ModelConfig(name="small", engine="vllm", model="bundled:smollm2-135m", env={"VLLM_CPU_KVCACHE_SPACE": "2"})
    placement = replica_placement(model)
    assert (placement.bundles, placement.strategy, placement.uses_placement_group) == ([], None, False)
    assert placement.actor_resources == {"num_cpus": 1, "num_gpus": 0}
    assert placed_model(model) is model
    options = actor_options(model)
    assert "scheduling_strategy" not in options
    assert options["runtime_env"] == {"env_vars": {"VLLM_CPU_KVCACHE_SPACE": "2"}}


@ray.remote
class Probe:
    pass


def ray_rejection(options: dict[str, Any]) -> str | None:
    """What Ray's own check of actor options (``ActorClass.options``) says about ``options``; None: accepted."""
    try:
        Probe.options(**options)
    except (TypeError, ValueError) as exc:
        return str(exc)
    return None


@pytest.mark.parametrize("model, in_group", [
    (gpu_model(1), True),
    (gpu_model(4), True),
    (ModelConfig(name="small", engine="vllm", model="bundled:smollm2-135m", env={"VLLM_CPU_KVCACHE_SPACE": "2"}),
     False),
    (ModelConfig(name="s", engine="sim"), False),
], ids=["1xH100", "TP4-H100", "cpu-vllm", "sim"])
def test_ray_accepts_the_actor_options(model: ModelConfig, in_group: bool):
    assert ray_rejection(actor_options(model, some_placement_group() if in_group else None)) is None


def test_rays_check_rejects_wrong_actor_options():
    """The check the test above relies on is real: a misspelt, a negative and a mistyped option are refused."""
    options = actor_options(gpu_model(1), some_placement_group())
    assert ray_rejection(options) is None
    assert "Invalid option keyword num_gpu" in (ray_rejection({**options, "num_gpu": 1}) or "")
    assert "cannot be negative" in (ray_rejection({**options, "num_cpus": -1}) or "")
    assert "env_vars" in (ray_rejection({**options, "runtime_env": {"env_vars": {"HF_HOME": 1}}}) or "")
