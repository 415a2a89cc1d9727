"""A model's config → vLLM ``AsyncEngineArgs``.

``engine_args`` from the config pass through as they are; the model path is
resolved (``bundled:`` models are prepared on first use), the served name is the
config's model name, ``gpus_per_replica`` is the tensor-parallel size, and the
reasoning parser also gates structured outputs (the grammar applies after the
reasoning ends; gpt-oss models get vLLM's ``openai_gptoss`` parser for that). CPU replicas get a
default KV-cache size, or vLLM reserves most of the machine's memory. The KV cache events
(``kv_events_config``) are the replica's own (``prefix_cache``), whatever the config says.
"""

from __future__ import annotations

import os

from vllm.config.kv_events import KVEventsConfig
from vllm.engine.arg_utils import AsyncEngineArgs

from fleetgate.core.config import ModelConfig
from fleetgate.replicas.bundled_model import resolve_model_path

CPU_KVCACHE_ENV = "VLLM_CPU_KVCACHE_SPACE"
# GiB of KV cache for a CPU replica when its environment does not say.
DEFAULT_CPU_KVCACHE_GIB = "2"
HARMONY_REASONING_PARSER = "openai_gptoss"


def apply_cpu_defaults(model: ModelConfig) -> None:
    """Set the CPU KV-cache size for this process when the model runs on CPU and nothing set it."""
    if model.gpus_per_replica == 0:
        os.environ.setdefault(CPU_KVCACHE_ENV, model.env.get(CPU_KVCACHE_ENV, DEFAULT_CPU_KVCACHE_GIB))


def build_engine_args(model: ModelConfig, kv_events_config: KVEventsConfig | None = None) -> AsyncEngineArgs:
    """Engine arguments for ``model`` (prepares a bundled model first: may take a while once)."""
    assert model.model, "engine vllm needs a model"
    args = dict(model.engine_args)
    args["model"] = resolve_model_path(model.model)
    args.setdefault("served_model_name", [model.name])
    if model.gpus_per_replica > 1:
        args.setdefault("tensor_parallel_size", model.gpus_per_replica)
    reasoning_parser = model.reasoning_parser or (HARMONY_REASONING_PARSER if model.uses_harmony else None)
    if reasoning_parser:
        args.setdefault("reasoning_parser", reasoning_parser)
    if kv_events_config is not None:
        args["kv_events_config"] = kv_events_config
    return AsyncEngineArgs(**args)
