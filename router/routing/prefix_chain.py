"""The router's hash chain over a canonical prompt: what its prefix index keys on, without a tokenizer.

The canonical prompt is the request's tools, then its messages, each in its
protobuf wire form (``canonical_bytes``: one C call per tool and message, which
is why it is bytes and not a rendered text — a 32k-token prompt costs about a
tenth of a millisecond to serialise, a fifth to hash). The same tools and
messages always serialise alike, whatever dialect they came in. The bytes are
cut into full blocks of ``block_bytes`` (a partial last block is not hashed: the
next turn extends it, so it would not match anyway), and block *i*'s hash is the
8-byte BLAKE2b of the bytes from the start to the end of block *i* (one running
hash, copied at each block's end), so two prompts share a block's hash exactly
when they share every byte up to its end. Two turns of one conversation share
the hashes of the history they have in common.

The chain travels to the replica in ``GenerateRequest.prefix``; the replica maps
each block onto the token block holding its end (``replicas.kv_index``), by the
block's share of the prompt's bytes (an image, a data: URL, weighs its bytes).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from fleetgate.v1 import replica_pb2 as pb

_ROOT = b"fleetgate-prefix-v1"


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
    data = memoryview(canonical_bytes(request))
    digests: list[bytes] = []
    running = hashlib.blake2b(_ROOT, digest_size=8)
    update, copy, append = running.update, running.copy, digests.append
    for start in range(0, len(data) - block_bytes + 1, block_bytes):
        update(data[start:start + block_bytes])
        append(copy().digest())
    return PrefixChain(digests, block_bytes, len(data))


def canonical_bytes(request: pb.GenerateRequest) -> bytes:
    """The bytes the chain hashes: the tools, then the messages, serialised (a raw prompt is its own text)."""
    if request.HasField("raw_prompt"):
        return request.raw_prompt.encode()
    return b"".join([tool.SerializeToString() for tool in request.tools]
                    + [message.SerializeToString() for message in request.messages])
