"""The hash chain over a prompt's full token blocks: what the sim's KV cache keys its blocks on.

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


def block_hashes(tokens: Sequence[str], block_size: int) -> list[int]:
    """One hash per full block of ``tokens``, each chained to the one before."""
    hashes: list[int] = []
    parent = _ROOT
    for start in range(0, len(tokens) - block_size + 1, block_size):
        block = _TOKEN_SEPARATOR.join(tokens[start:start + block_size]).encode()
        digest = hashlib.sha256(parent + block).digest()
        hashes.append(int.from_bytes(digest[:8], "big") >> 1)
        parent = digest
    return hashes
