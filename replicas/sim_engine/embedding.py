"""The sim's embeddings (pure): a deterministic bag-of-words vector per input, not a model.

Each input's tokens (the sim's words, ``tokens.split_tokens``, compared without case
or surrounding whitespace; a token id of a token-array input is the word ``<id>``)
each map to a fixed pseudo-random Gaussian vector of ``sim.embedding_dimensions``
values, seeded by a hash of the word and ``sim.seed``; the input's embedding is
their sum scaled to unit length. So identical texts get identical vectors on every
replica and every run, and texts sharing words are closer than texts that share
none. Paraphrases in other words are not close: the sim is for load, routing and
API tests, not for retrieval quality.
"""

from __future__ import annotations

import hashlib
import random
from functools import lru_cache

from fleetgate.replicas.embeddings import unit
from fleetgate.replicas.sim_engine.tokens import split_tokens
from fleetgate.v1 import replica_pb2 as pb


def input_words(item: pb.EmbedInput) -> list[str]:
    """The words an input embeds: a text's tokens, or one word per token id."""
    if item.HasField("tokens"):
        return [f"<{token_id}>" for token_id in item.tokens.ids]
    return [token.strip().casefold() for token in split_tokens(item.text)]


def embed_words(words: list[str], dimensions: int, seed: int) -> list[float]:
    """The unit vector of ``words`` (see the module docstring)."""
    total = [0.0] * dimensions
    for word in words:
        for i, value in enumerate(_word_vector(word, dimensions, seed)):
            total[i] += value
    return unit(total)


@lru_cache(maxsize=65536)
def _word_vector(word: str, dimensions: int, seed: int) -> tuple[float, ...]:
    digest = hashlib.blake2b(f"{seed}:{word}".encode(), digest_size=8).digest()
    rng = random.Random(int.from_bytes(digest, "little"))
    return tuple(rng.gauss(0.0, 1.0) for _ in range(dimensions))
