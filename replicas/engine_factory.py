"""The engine factory: ``build_engine`` maps a model's ``engine`` setting to its class (``engine_interface.Engine``).

A vLLM model with ``task: embed`` gets the embedding engine (``vllm_engine/embedding.py``).
vLLM is imported only when a vLLM model is built, so sim replicas and tests start
without loading torch.
"""

from __future__ import annotations

from fleetgate.core.config import ModelConfig, TracingConfig
from fleetgate.replicas.engine_interface import Engine
from fleetgate.replicas.kv_events import KvEventSink


def build_engine(
    model: ModelConfig, replica_id: str, kv_events: KvEventSink | None = None, *, tracing: TracingConfig | None = None
) -> Engine:
    """A new, not yet started engine for ``model``; ``kv_events`` receives its KV cache events. With ``tracing``,
    an engine that traces on its own (vLLM) exports its spans as it says."""
    if model.engine == "sim":
        from fleetgate.replicas.sim_engine import SimEngine

        return SimEngine(model, replica_id, kv_events)
    if model.engine == "vllm" and model.task == "embed":
        from fleetgate.replicas.vllm_engine.embedding import VllmEmbeddingEngine

        return VllmEmbeddingEngine(model, replica_id, tracing=tracing)  # no KV cache to publish: no prefix reuse
    if model.engine == "vllm":
        from fleetgate.replicas.vllm_engine import VllmEngine

        return VllmEngine(model, replica_id, kv_events, tracing=tracing)
    raise ValueError(f"model {model.name!r}: unknown engine {model.engine!r}")
