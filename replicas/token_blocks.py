"""The hash chain over a prompt's full token blocks: the sim's KV cache keys its blocks on it, and the
vLLM replica mirrors vLLM's cached blocks in it (vLLM's own hashes are not reproducible outside its engine).

Block *i* holds tokens ``[i × block_size, (i + 1) × block_size)``; only full
blocks are hashed (vLLM's prefix caching caches full blocks only). A block's
hash covers its parent's hash and its own tokens, so equal hashes mean equal
prefixes up to and including that block. Hashes are the first 63 bits of a
SHA-256 (stable across processes and Python runs, and within a protobuf int64).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

_ROOT = b"fleetgate-sim-kv"  # the parent of a sequence's first block
_TOKEN_SEPARATOR = "\x1f"


def block_hashes(tokens: Sequence[str] | Sequence[int], block_size: int) -> list[int]:
    """One hash per full block of ``tokens`` (the sim's words, or token ids), each chained to the one before."""
    hashes: list[int] = []
    parent = _ROOT
    for start in range(0, len(tokens) - block_size + 1, block_size):
        hashes.append(_chained(parent, tokens[start:start + block_size]))
        parent = hashes[-1].to_bytes(8, "big")
    return hashes


def next_block_hash(parent: int | None, block: Sequence[str] | Sequence[int]) -> int:
    """The hash of ``block`` after the block hashed ``parent`` (None: the sequence's first block)."""
    return _chained(_ROOT if parent is None else parent.to_bytes(8, "big"), block)


def _chained(parent: bytes, block: Sequence[str] | Sequence[int]) -> int:
    data = _TOKEN_SEPARATOR.join(map(str, block)).encode()
    return int.from_bytes(hashlib.sha256(parent + data).digest()[:8], "big") >> 1
