"""Wire schema of ``POST /v1/embeddings`` requests (pydantic v2; unknown fields accepted and ignored).

Follows the ``openai`` SDK's ``EmbeddingCreateParams``: ``input`` is a string, a list
of strings, a list of token ids (one input) or a list of token-id lists, at most
``MAX_INPUTS`` of them, none empty; ``encoding_format`` is ``float`` (the default) or
``base64``; ``dimensions`` at least 1; ``user`` is accepted (a session hint). ``input``
is checked by ``embed_inputs`` rather than by a pydantic union, so a bad one is a
400 naming the element at fault (``input[3]``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, PrivateAttr

from fleetgate.router.dialects.openai_common import Wire
from fleetgate.router.errors import invalid_request
from fleetgate.v1 import replica_pb2 as pb

# Inputs in one request, as OpenAI allows.
MAX_INPUTS = 2048


class EmbeddingRequest(Wire):
    model: str
    input: Any
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None
    # The inputs as the replica takes them (``embed_inputs``), set when the request is parsed.
    _inputs: list[pb.EmbedInput] = PrivateAttr(default_factory=list)

    @property
    def inputs(self) -> list[pb.EmbedInput]:
        return self._inputs


def embed_inputs(value: Any) -> list[pb.EmbedInput]:
    """The request's ``input`` as the replica's inputs, in order; a 400 naming the element at fault."""
    if isinstance(value, str):
        return [_text(value, "input")]
    if not isinstance(value, list):
        raise invalid_request("input: must be a string, a list of strings, a list of token ids or a list of "
                              "token-id lists", "input")
    if not value:
        raise invalid_request("input: must not be an empty list", "input")
    if all(_is_token_id(item) for item in value):  # one input given as token ids
        return [pb.EmbedInput(tokens=pb.TokenIds(ids=value))]
    if len(value) > MAX_INPUTS:
        raise invalid_request(f"input: at most {MAX_INPUTS} inputs per request, got {len(value)}", "input")
    inputs: list[pb.EmbedInput] = []
    for index, item in enumerate(value):
        param = f"input[{index}]"
        if isinstance(item, str):
            inputs.append(_text(item, param))
        elif isinstance(item, list) and all(_is_token_id(token_id) for token_id in item):
            if not item:
                raise invalid_request(f"{param}: must not be an empty list of token ids", param)
            inputs.append(pb.EmbedInput(tokens=pb.TokenIds(ids=item)))
        else:
            raise invalid_request(f"{param}: must be a string or a list of token ids (integers from 0)", param)
    return inputs


def _text(text: str, param: str) -> pb.EmbedInput:
    if not text:
        raise invalid_request(f"{param}: must not be an empty string", param)
    return pb.EmbedInput(text=text)


def _is_token_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**31
