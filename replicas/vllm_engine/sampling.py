"""Canonical request → vLLM ``SamplingParams``: sampling knobs, stops and structured outputs (pure translation)."""

from __future__ import annotations

from typing import Any

from vllm.sampling_params import RequestOutputKind, SamplingParams, StructuredOutputsParams

from fleetgate.replicas.refusal import parse_json_schema
from fleetgate.v1 import replica_pb2 as pb

# The request's sampling knobs that override the model's defaults when set.
_SAMPLING_KNOBS = ("temperature", "top_p", "top_k", "seed", "presence_penalty", "frequency_penalty",
                   "repetition_penalty")

Kind = pb.ResponseFormat.Kind


def response_format_constraint(response_format: pb.ResponseFormat) -> StructuredOutputsParams | None:
    """vLLM structured outputs for ``json_schema`` / ``json_object``; None for plain text."""
    if response_format.kind == Kind.KIND_JSON_OBJECT:
        return StructuredOutputsParams(json_object=True)
    if response_format.kind != Kind.KIND_JSON_SCHEMA:
        return None
    return StructuredOutputsParams(json=parse_json_schema(response_format.schema_json, "response_format schema"))


def sampling_params(
    request: pb.GenerateRequest,
    *,
    max_tokens: int,
    defaults: dict[str, Any],
    structured_outputs: StructuredOutputsParams | None,
    stop_token_ids: list[int],
    skip_special_tokens: bool = True,
) -> SamplingParams:
    """``SamplingParams`` for one request; ``defaults`` are the model's (its generation config) for unset knobs."""
    sampling = request.sampling
    knobs: dict[str, Any] = dict(defaults)
    for name in _SAMPLING_KNOBS:
        if sampling.HasField(name):
            knobs[name] = getattr(sampling, name)
    knobs.pop("max_tokens", None)
    return SamplingParams(
        **knobs,
        max_tokens=max_tokens,
        stop=[s for s in sampling.stop if s] or None,
        stop_token_ids=stop_token_ids or None,
        skip_special_tokens=skip_special_tokens,
        structured_outputs=structured_outputs,
        output_kind=RequestOutputKind.DELTA,
    )
