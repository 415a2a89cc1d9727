"""Prompt text for a trace request: shared ``hash_ids`` become shared text, ``input_length`` sim tokens exactly.

Each hash id is a deterministic block of ``TRACE_BLOCK_TOKENS`` two-letter words
(drawn from a generator seeded by the id), so two requests that share their first k
ids share their first k blocks of text, which the router's prefix chain and the sim's
KV cache both see as a shared prefix. The sim counts a token per word (whitespace
then non-whitespace) plus one role marker for the single user message, so the text
holds ``input_length - 1`` words: the blocks in order, the last one cut. A request
whose ids cover fewer tokens than its length is padded with words of its own.
Words are three bytes with their space, which keeps a 190k-token body under 600 kB.
"""

from __future__ import annotations

import functools
import random
import string

from fleetgate.loadtest.bench.trace.mooncake import TRACE_BLOCK_TOKENS, TraceRequest

_VOCABULARY = tuple(a + b for a in string.ascii_lowercase for b in string.ascii_lowercase)
# Characters per word with its leading space.
WORD_CHARS = 3
# The single user message's role marker is one sim token of the prompt.
ROLE_MARKER_TOKENS = 1


def _words(seed: str, count: int) -> str:
    """``count`` words, each with a leading space."""
    rng = random.Random(seed)
    return "".join(" " + word for word in rng.choices(_VOCABULARY, k=count))


@functools.lru_cache(maxsize=16384)
def block_text(hash_id: int) -> str:
    """The text of one trace block: ``TRACE_BLOCK_TOKENS`` words, each with a leading space."""
    return _words(f"fleetgate-trace-block:{hash_id}", TRACE_BLOCK_TOKENS)


def prompt_text(request: TraceRequest) -> str:
    """The request's prompt text: its blocks' words in order, cut to ``input_length`` tokens with the role marker."""
    words = max(1, request.input_length - ROLE_MARKER_TOKENS)
    chars = words * WORD_CHARS
    text = "".join(block_text(h) for h in request.hash_ids[: -(-words // TRACE_BLOCK_TOKENS)])
    if len(text) < chars:
        text += _words(f"fleetgate-trace-pad:{request.index}", (chars - len(text)) // WORD_CHARS)
    return text[1:chars]
