"""The router's hash chain over a canonical prompt: what its prefix index keys on, without a tokenizer.

The canonical request renders to one deterministic text: its tools (name,
description, parameters), then per message its role, content (an image as a
digest of its URL), replayed reasoning, tool calls and the call id it answers,
fields and messages apart by control characters no JSON string carries raw. The
text's UTF-8 bytes are cut into full blocks of ``block_bytes`` (a partial last
block is not hashed: the next turn extends it, so it would not match anyway),
and block *i*'s hash is the 8-byte BLAKE2b of the text from its start to the end
of block *i* (one running hash, copied at each block's end), so two prompts
share a block's hash exactly when they share every byte up to its end. Two turns
of one conversation, whatever dialect they came in, share the hashes of the
history they have in common.

The chain travels to the replica in ``GenerateRequest.prefix``; the replica maps
each block onto the token block holding its end (``replicas.kv_index``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from fleetgate.v1 import replica_pb2 as pb

_RECORD = "\x1e"
_UNIT = "\x1f"
_ROOT = b"fleetgate-prefix-v1"
_ROLES = {number: name for name, number in pb.Role.items()}
# Image URLs longer than this (data: URLs) enter the text as a digest.
_LONG_URL = 256


@dataclass(frozen=True)
class PrefixChain:
    """The chain of one prompt: its block digests (Redis members), the block size and the whole length."""

    digests: list[bytes]
    block_bytes: int
    total_bytes: int

    def to_proto(self) -> pb.PrefixChain:
        return pb.PrefixChain(
            block_hashes=[int.from_bytes(digest, "big") for digest in self.digests],
            block_bytes=self.block_bytes,
            total_bytes=self.total_bytes,
        )


def prefix_chain(request: pb.GenerateRequest, block_bytes: int) -> PrefixChain:
    """The chain of ``request``'s canonical prompt in blocks of ``block_bytes`` (see the module docstring)."""
    text = memoryview(canonical_text(request).encode())
    digests: list[bytes] = []
    running = hashlib.blake2b(_ROOT, digest_size=8)
    for start in range(0, len(text) - block_bytes + 1, block_bytes):
        running.update(text[start:start + block_bytes])
        digests.append(running.copy().digest())
    return PrefixChain(digests, block_bytes, len(text))


def canonical_text(request: pb.GenerateRequest) -> str:
    """The deterministic text the chain hashes (a raw prompt is its own text)."""
    if request.HasField("raw_prompt"):
        return request.raw_prompt
    parts: list[str] = []
    for tool in request.tools:
        parts += (_RECORD, "tool", _UNIT, tool.name, _UNIT, tool.description, _UNIT, tool.parameters_json)
    for message in request.messages:
        parts += (_RECORD, _ROLES[message.role], _UNIT, message.name)
        for part in message.content:
            parts += (_UNIT, part.text if part.WhichOneof("part") == "text" else _image(part.image_url))
        if message.reasoning:
            parts += (_UNIT, "reasoning", _UNIT, message.reasoning)
        for call in message.tool_calls:
            parts += (_UNIT, "call", _UNIT, call.name, _UNIT, call.arguments)
        if message.tool_call_id:
            parts += (_UNIT, "answers", _UNIT, message.tool_call_id)
    return "".join(parts)


def _image(url: str) -> str:
    if len(url) <= _LONG_URL:
        return "image " + url
    return "image " + hashlib.blake2b(url.encode(), digest_size=16).hexdigest()
