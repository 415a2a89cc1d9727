"""The engine factory: ``build_engine`` maps a model's ``engine`` setting to its class (``engine_interface.Engine``).

vLLM is imported only when a vLLM model is built, so sim replicas and tests start
without loading torch.
"""

from __future__ import annotations

from fleetgate.core.config import ModelConfig
from fleetgate.replicas.engine_interface import Engine


def build_engine(model: ModelConfig, replica_id: str) -> Engine:
    """A new, not yet started engine for ``model``."""
    if model.engine == "sim":
        from fleetgate.replicas.sim_engine import SimEngine

        return SimEngine(model, replica_id)
    if model.engine == "vllm":
        from fleetgate.replicas.vllm_engine import VllmEngine

        return VllmEngine(model, replica_id)
    raise ValueError(f"model {model.name!r}: unknown engine {model.engine!r}")
