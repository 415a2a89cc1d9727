"""Reasoning effort levels: every dialect's named level -> the canonical effort (pure).

The canonical request carries an effort of ``""`` (the model's default),
``low``, ``medium`` or ``high``. Dialects name more levels (OpenAI's
``reasoning_effort`` / ``reasoning.effort`` from ``minimal`` to ``max``,
Anthropic's ``output_config.effort`` from ``low`` to ``max``): ``minimal`` is
``low``, and the levels above ``high`` are ``high``. ``none`` is not a level:
the OpenAI dialects turn reasoning off with it (``REASONING_OFF``).
"""

from __future__ import annotations

EFFORTS: dict[str, str] = {
    "minimal": "low", "low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high",
}
REASONING_OFF = "none"


def canonical_effort(level: str) -> str:
    """The canonical effort of a dialect's effort level (a level its wire schema accepted)."""
    return EFFORTS[level]
