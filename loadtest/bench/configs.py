"""The configuration each benchmark part runs with, built as data and written as YAML.

fleetgate clusters are ``FleetgateConfig`` documents (validated before they are
written); the vLLM replica's settings come from the shipped ``deploy/local.yaml``
so the benchmark measures fleetgate as users run it, and vLLM's own server gets
the same engine arguments as command-line flags.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from fleetgate.core.config import DEFAULT_CONFIG, FleetgateConfig, ModelConfig, load_config

SIM_MODEL = "sim"
VLLM_MODEL = "smollm2-135m"


def _cluster(models: list[dict[str, Any]]) -> dict[str, Any]:
    data = {
        "redis": {"url": None},
        "router": {"host": "127.0.0.1", "auth": False},
        "models": models,
    }
    FleetgateConfig.model_validate(data)
    return data


def sim_cluster(ttft_ms: float, itl_ms: float, output_tokens: int) -> dict[str, Any]:
    """One sim model; ``output_tokens`` is the natural length, requests cap it with max_tokens."""
    return _cluster([{
        "name": SIM_MODEL, "engine": "sim", "replicas": 1,
        "sim": {"ttft_ms": ttft_ms, "itl_ms": itl_ms, "output_tokens": output_tokens, "text": "lorem"},
    }])


def shipped_vllm_model(config_path: Path = DEFAULT_CONFIG, name: str = VLLM_MODEL) -> ModelConfig:
    """The vLLM model as the shipped local config serves it (engine args, env)."""
    return load_config(config_path, environ={}).model(name)


def vllm_cluster(model: ModelConfig) -> dict[str, Any]:
    return _cluster([{**model.model_dump(mode="json", exclude_defaults=True), "replicas": 1}])


def engine_flags(engine_args: dict[str, Any]) -> list[str]:
    """vLLM engine arguments as ``api_server`` flags: ``max_model_len: 2048`` → ``--max-model-len 2048``."""
    flags: list[str] = []
    for key, value in engine_args.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            flags.append(flag)
        elif value is False:
            flags.append("--no-" + key.replace("_", "-"))
        elif value is not None:
            flags += [flag, str(value)]
    return flags


def litellm_proxy(model: str, api_base: str) -> dict[str, Any]:
    """LiteLLM proxy config: ``model`` forwarded to an OpenAI-compatible server at ``api_base`` (…/v1)."""
    return {
        "model_list": [{
            "model_name": model,
            "litellm_params": {"model": f"openai/{model}", "api_base": api_base, "api_key": "none"},
        }],
        "litellm_settings": {"drop_params": True},
    }


def quiet_access_log() -> dict[str, Any]:
    """A logging config (``dictConfig``) for uvicorn without per-request access lines, as vLLM's server runs here."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "loggers": {"uvicorn.access": {"level": "WARNING"}},
    }


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
