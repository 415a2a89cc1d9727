"""The ``vllm`` engine: vLLM ``AsyncLLM`` behind fleetgate's ``Engine`` interface (imports vLLM; load it lazily)."""

from fleetgate.replicas.vllm_engine.engine import VllmEngine

__all__ = ["VllmEngine"]
