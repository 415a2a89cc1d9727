"""Tool-call ids, one scheme for the router and the replicas: a dialect's prefix and 24 hex digits.

Replicas name every call they stream (``call_…``, the OpenAI shape, which is also
the canonical one); where a model or its parser names its calls itself, that id is
kept. The router mints one only when a replica sent none, with the prefix the
client's dialect uses (``call_`` for OpenAI's APIs; Anthropic's ``toolu_`` ids are
derived from the canonical one, so a stream and its JSON agree). The sim passes
its per-request random generator, so a seeded request gets the same ids every time.
"""

from __future__ import annotations

import random
import secrets

OPENAI_PREFIX = "call_"
_HEX_DIGITS = 24


def new_tool_call_id(prefix: str = OPENAI_PREFIX, *, rng: random.Random | None = None) -> str:
    """A fresh call id, ``prefix`` and 24 hex digits; drawn from ``rng`` when given (reproducible), else from the OS."""
    bits = rng.getrandbits(_HEX_DIGITS * 4) if rng is not None else secrets.randbits(_HEX_DIGITS * 4)
    return f"{prefix}{bits:0{_HEX_DIGITS}x}"
