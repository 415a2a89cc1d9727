"""The knee of a speed sweep: the first speed where a TTFT percentile exceeds ``factor`` × its light-load value.

Light load is the sweep's slowest speed. Pure, so the rule is unit-tested.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def knee_speed(points: Sequence[tuple[float, float]], factor: float = 4.0) -> float | None:
    """``points`` are (speed, TTFT p90); the first speed past the light-load one whose p90 exceeds ``factor`` × it."""
    ordered = sorted((s, v) for s, v in points if not math.isnan(v))
    if len(ordered) < 2:
        return None
    light = ordered[0][1]
    return next((speed for speed, value in ordered[1:] if value > factor * light), None)
