"""Tool-call ids, one shape for every engine and format: ``call_`` and 24 hex digits.

Where a model or its parser names its calls itself, that id is kept; every other
call gets one from ``new_tool_call_id``. The sim passes its per-request random
generator, so a seeded request gets the same ids every time.
"""

from __future__ import annotations

import random
import secrets

_HEX_DIGITS = 24


def new_tool_call_id(rng: random.Random | None = None) -> str:
    """A fresh call id; drawn from ``rng`` when given (reproducible), else from the OS."""
    bits = rng.getrandbits(_HEX_DIGITS * 4) if rng is not None else secrets.randbits(_HEX_DIGITS * 4)
    return f"call_{bits:0{_HEX_DIGITS}x}"
