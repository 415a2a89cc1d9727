"""The sim's tokens: words, and the prompt's token sequence rendered from the canonical request.

A token is a run of whitespace followed by a run of non-whitespace, so joining a
completion's tokens gives back its text exactly. The prompt is a plain,
deterministic rendering of the request: the tools (name, description, parameters
JSON), then per message a role marker, its content (an image is ``IMAGE_TOKENS``
tokens naming the image), its replayed reasoning and its tool calls; a raw prompt
is its own words. Two requests that begin alike render to token sequences that
begin alike, which is what the KV cache's prefix reuse keys on (``block_hashes``).
"""

from __future__ import annotations

import hashlib
import re

from fleetgate.v1 import replica_pb2 as pb

# An image part counts as this many prompt tokens (OpenAI's low-detail cost).
IMAGE_TOKENS = 85
_TOKEN = re.compile(r"\s*\S+")


def split_tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def prompt_tokens(request: pb.GenerateRequest) -> list[str]:
    """The request's prompt as the sim's tokens, in order (see the module docstring)."""
    if request.HasField("raw_prompt"):
        return split_tokens(request.raw_prompt)
    tokens: list[str] = []
    for tool in request.tools:
        tokens += split_tokens(" ".join((tool.name, tool.description, tool.parameters_json)))
    for message in request.messages:
        tokens.append(f"<|{pb.Role.Name(message.role)}|>")
        for part in message.content:
            if part.HasField("image_url"):
                tokens += [_image_token(part.image_url)] * IMAGE_TOKENS
            else:
                tokens += split_tokens(part.text)
        tokens += split_tokens(message.reasoning)
        for call in message.tool_calls:
            tokens += split_tokens(f"{call.name} {call.arguments}")
    return tokens


def count_prompt_tokens(request: pb.GenerateRequest) -> int:
    """Tokens of the request's prompt: words, a role marker per message, ``IMAGE_TOKENS`` per image."""
    return len(prompt_tokens(request))


def _image_token(url: str) -> str:
    return f"<image:{hashlib.sha256(url.encode()).hexdigest()[:16]}>"
