"""What every embedding engine shares (pure): refusals, the ``dimensions`` check and Matryoshka truncation.

An ``Embed`` call (``fleetgate.v1.EmbedRequest``) is answered with one unit-length
vector per input, in input order, or refused with an ``EmbedResponse`` carrying
an error code, a message and the request field at fault (``error_param``, e.g.
``dimensions`` or ``input[3]``), which the router turns into a 400 naming it.

``dimensions`` (a request's leading dimensions to keep) is honoured by models
whose config says ``matryoshka: true``: the vector is cut to that many values and
renormalised to unit length. Any other model refuses a ``dimensions`` other than
its own size (its own size is the vector as it is).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from fleetgate.core.config import ModelConfig
from fleetgate.core.events import ErrorCode
from fleetgate.replicas.refusal import Refusal
from fleetgate.v1 import replica_pb2 as pb


class EmbedRefusal(Refusal):
    """A request an embedding engine will not serve, with the request field at fault; ``response()`` is the
    refusal it answers."""

    def __init__(self, code: ErrorCode, message: str, param: str = "") -> None:
        super().__init__(code, message)
        self.param = param

    def response(self) -> pb.EmbedResponse:
        return pb.EmbedResponse(error_code=self.code, error_message=self.message, error_param=self.param)


NOT_A_GENERATION_MODEL = Refusal(ErrorCode.ERROR_CODE_UNSUPPORTED,
                                 "This replica's model is an embedding model (task: embed): it serves /v1/embeddings "
                                 "only")
NOT_AN_EMBEDDING_MODEL = EmbedRefusal(ErrorCode.ERROR_CODE_UNSUPPORTED,
                                      "This replica's model is not an embedding model (its config's task is "
                                      "generate)", "model")


def check_dimensions(model: ModelConfig, dimensions: int, size: int) -> None:
    """Refuse a requested ``dimensions`` (0: not requested) that ``model`` with vectors of ``size`` cannot give."""
    if dimensions == 0 or dimensions == size:
        return
    if not model.matryoshka:
        raise EmbedRefusal(ErrorCode.ERROR_CODE_INVALID_REQUEST,
                           f"The model {model.name!r} does not support `dimensions` (its embeddings have {size}); "
                           "leave it out", "dimensions")
    if not 1 <= dimensions <= size:
        raise EmbedRefusal(ErrorCode.ERROR_CODE_INVALID_REQUEST,
                           f"`dimensions` must be between 1 and {size} for the model {model.name!r}", "dimensions")


def check_length(model: ModelConfig, index: int, tokens: int, max_tokens: int) -> None:
    """Refuse input ``index`` of ``tokens`` tokens when the model takes at most ``max_tokens`` per input."""
    if tokens > max_tokens:
        raise EmbedRefusal(ErrorCode.ERROR_CODE_CONTEXT_LENGTH_EXCEEDED,
                           f"input[{index}] has {tokens} tokens; the model {model.name!r} embeds at most "
                           f"{max_tokens} per input", f"input[{index}]")
    if tokens == 0:
        raise EmbedRefusal(ErrorCode.ERROR_CODE_INVALID_REQUEST, f"input[{index}] has no tokens", f"input[{index}]")


def shaped(values: Sequence[float], dimensions: int) -> list[float]:
    """``values`` (a unit vector) cut to its first ``dimensions`` (0: all) and renormalised to unit length."""
    kept = list(values[:dimensions] if dimensions else values)
    if dimensions == 0 or dimensions >= len(values):
        return kept
    return unit(kept)


def unit(values: Sequence[float]) -> list[float]:
    """``values`` scaled to unit L2 length (a zero vector stays zero)."""
    norm = math.sqrt(math.fsum(v * v for v in values))
    return [v / norm for v in values] if norm > 0 else list(values)
