"""A model's config → vLLM ``AsyncEngineArgs``.

``engine_args`` from the config pass through as they are; the model path is
resolved (``bundled:`` models are prepared on first use), the served name is the
config's model name, ``gpus_per_replica`` is the tensor-parallel size, a ``task: embed``
model runs with vLLM's pooling runner (``runner: pooling``), and the reasoning parser
also gates structured outputs (the grammar applies after the reasoning ends; gpt-oss
models get vLLM's ``openai_gptoss`` parser for that). CPU replicas get a default
KV-cache size, or vLLM reserves most of the machine's memory. The KV cache events
(``kv_events_config``) are the replica's own (``prefix_cache``), whatever the config says.

With ``tracing`` (the replica traces and ``tracing.engine_spans`` is on) vLLM's own tracing is turned on:
``otlp_traces_endpoint`` is the replica's OTLP/HTTP traces URL (``fleetgate.core.tracing.traces_endpoint``;
one set in ``engine_args`` wins), and ``apply_tracing_env`` sets what vLLM's exporter reads from the
environment: ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/protobuf`` (vLLM's default is gRPC), the collector's
headers (``OTEL_EXPORTER_OTLP_TRACES_HEADERS``) and, unless set, ``OTEL_SERVICE_NAME`` <prefix>-vllm. Each
request's ``trace_headers`` (``AsyncLLM.add_request``) then make vLLM's ``llm_request`` span a child of the
replica's ``generate`` span.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from urllib.parse import quote

from vllm.config.kv_events import KVEventsConfig
from vllm.engine.arg_utils import AsyncEngineArgs

from fleetgate.core.config import ModelConfig, TracingConfig
from fleetgate.core.tracing import service_name, traces_endpoint
from fleetgate.replicas.bundled_model import resolve_model_path

CPU_KVCACHE_ENV = "VLLM_CPU_KVCACHE_SPACE"
# GiB of KV cache for a CPU replica when its environment does not say.
DEFAULT_CPU_KVCACHE_GIB = "2"
HARMONY_REASONING_PARSER = "openai_gptoss"
OTLP_PROTOCOL_ENV = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
OTLP_HEADERS_ENV = "OTEL_EXPORTER_OTLP_TRACES_HEADERS"
SERVICE_NAME_ENV = "OTEL_SERVICE_NAME"


def apply_cpu_defaults(model: ModelConfig) -> None:
    """Set the CPU KV-cache size for this process when the model runs on CPU and nothing set it."""
    if model.gpus_per_replica == 0:
        os.environ.setdefault(CPU_KVCACHE_ENV, model.env.get(CPU_KVCACHE_ENV, DEFAULT_CPU_KVCACHE_GIB))


def apply_tracing_env(tracing: TracingConfig, environ: MutableMapping[str, str] = os.environ) -> None:
    """What vLLM's span exporter reads from this process's environment (see the module docstring)."""
    environ[OTLP_PROTOCOL_ENV] = "http/protobuf"
    if tracing.headers:
        environ[OTLP_HEADERS_ENV] = ",".join(f"{quote(k)}={quote(v)}" for k, v in tracing.headers.items())
    environ.setdefault(SERVICE_NAME_ENV, service_name(tracing, "vllm"))


def build_engine_args(
    model: ModelConfig, kv_events_config: KVEventsConfig | None = None, tracing: TracingConfig | None = None
) -> AsyncEngineArgs:
    """Engine arguments for ``model`` (prepares a bundled model first: may take a while once); with ``tracing``,
    vLLM's own tracing exports to its endpoint."""
    assert model.model, "engine vllm needs a model"
    args = dict(model.engine_args)
    args["model"] = resolve_model_path(model.model)
    args.setdefault("served_model_name", [model.name])
    if model.gpus_per_replica > 1:
        args.setdefault("tensor_parallel_size", model.gpus_per_replica)
    if model.task == "embed":
        args.setdefault("runner", "pooling")  # vllm_engine/embedding.py: AsyncLLM.encode
    reasoning_parser = model.reasoning_parser or (HARMONY_REASONING_PARSER if model.uses_harmony else None)
    if reasoning_parser:
        args.setdefault("reasoning_parser", reasoning_parser)
    if kv_events_config is not None:
        args["kv_events_config"] = kv_events_config
    if tracing is not None:
        args.setdefault("otlp_traces_endpoint", traces_endpoint(tracing))
    return AsyncEngineArgs(**args)
