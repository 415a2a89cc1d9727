"""Stop-sequence matching over streamed text, for engines that do not do it themselves (sim).

Text that could still turn out to be the start of a stop sequence is held back,
so the stream never shows any part of a matched stop string and the text before
it arrives complete.
"""

from __future__ import annotations

from collections.abc import Iterable


class StopMatcher:
    """Feed text deltas in order; get back the text that is safe to emit and the stop that matched."""

    def __init__(self, stops: Iterable[str]) -> None:
        self.stops = [s for s in stops if s]
        self._pending = ""

    def feed(self, delta: str) -> tuple[str, str | None]:
        """Return (text to emit now, matched stop or None). After a match, stop feeding."""
        self._pending += delta
        match = self._earliest_match()
        if match is not None:
            position, stop = match
            emit, self._pending = self._pending[:position], ""
            return emit, stop
        hold = self._partial_suffix_length()
        cut = len(self._pending) - hold
        emit, self._pending = self._pending[:cut], self._pending[cut:]
        return emit, None

    def flush(self) -> str:
        """Whatever is held back, at the end of generation (no stop matched)."""
        emit, self._pending = self._pending, ""
        return emit

    def _earliest_match(self) -> tuple[int, str] | None:
        found = [(self._pending.find(stop), stop) for stop in self.stops]
        hits = [(position, stop) for position, stop in found if position >= 0]
        return min(hits, key=lambda hit: hit[0]) if hits else None

    def _partial_suffix_length(self) -> int:
        """Length of the longest end of the pending text that begins some stop sequence."""
        longest = 0
        for stop in self.stops:
            for length in range(min(len(stop) - 1, len(self._pending)), longest, -1):
                if self._pending.endswith(stop[:length]):
                    longest = length
                    break
        return longest
