"""How many tokens a request may generate: what is left of the context after the prompt.

Shared by the engines (vLLM and sim). A prompt that leaves no room is refused with
``CONTEXT_LENGTH_EXCEEDED``. A ``max_tokens`` larger than the room is clamped to
it when the model allows clamping (the default, because agent clients send large
defaults such as 32000), and refused otherwise.
"""

from __future__ import annotations

from fleetgate.core.events import ErrorCode
from fleetgate.replicas.refusal import Refusal
from fleetgate.v1 import replica_pb2 as pb


def requested_max_tokens(request: pb.GenerateRequest) -> int | None:
    """The request's ``max_tokens``, None when it sets none."""
    return request.sampling.max_tokens if request.sampling.HasField("max_tokens") else None


def completion_budget(prompt_tokens: int, context_length: int, requested: int | None, clamp: bool) -> int:
    """The ``max_tokens`` to generate with (raises ``Refusal``)."""
    room = context_length - prompt_tokens
    if room <= 0:
        raise Refusal(
            ErrorCode.ERROR_CODE_CONTEXT_LENGTH_EXCEEDED,
            f"the prompt is {prompt_tokens} tokens, the model's context is {context_length} tokens: "
            "no room is left to generate; shorten the conversation",
        )
    if requested is None:
        return room
    if requested < 1:
        raise Refusal(ErrorCode.ERROR_CODE_INVALID_REQUEST, f"max_tokens must be at least 1, got {requested}")
    if requested <= room or clamp:
        return min(requested, room)
    raise Refusal(
        ErrorCode.ERROR_CODE_CONTEXT_LENGTH_EXCEEDED,
        f"the prompt ({prompt_tokens} tokens) plus max_tokens ({requested}) exceeds the model's context "
        f"of {context_length} tokens; at most {room} tokens can be generated",
    )
