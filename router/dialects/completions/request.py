"""Completions request -> canonical ``pb.GenerateRequest`` (pure): a raw prompt (``raw_prompt``, no chat template).

One prompt string (or a list of exactly one), the shared OpenAI sampling fields;
``n`` must be 1, and ``best_of``, ``echo``, ``suffix`` and ``logprobs`` are not supported.
"""

from __future__ import annotations

from fleetgate.router.dialects.completions.protocol import CompletionRequest
from fleetgate.router.dialects.openai_common import canonical_sampling, check_single_choice
from fleetgate.router.errors import invalid_request
from fleetgate.v1 import replica_pb2 as pb


def to_generate_request(request: CompletionRequest) -> pb.GenerateRequest:
    check_single_choice(request.n)
    if request.best_of not in (None, 1):
        raise invalid_request("best_of is not supported", "best_of")
    if request.echo:
        raise invalid_request("echo is not supported", "echo")
    if request.suffix:
        raise invalid_request("suffix is not supported", "suffix")
    if request.logprobs is not None:
        raise invalid_request("logprobs are not supported", "logprobs")
    if isinstance(request.prompt, list):
        if len(request.prompt) != 1:
            raise invalid_request("prompt must be one string (a list of prompts is not supported)", "prompt")
        prompt = request.prompt[0]
    else:
        prompt = request.prompt
    return pb.GenerateRequest(
        model=request.model, raw_prompt=prompt, sampling=canonical_sampling(request, request.max_tokens)
    )
