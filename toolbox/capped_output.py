"""Output a sandboxed run may show: read incrementally, kept up to a byte budget, the rest only counted.

A run's stdout and stderr share one ``OutputBudget`` (``tools.sandbox.max_output_bytes``): what arrives past it
is read and dropped (so a process printing 100 MB never blocks on a full pipe, and never fills the toolbox's
memory), and ``truncation_note`` says how many bytes the model does not see.
"""

from __future__ import annotations

import asyncio

_CHUNK = 65536


class OutputBudget:
    """Bytes left to keep, shared by the streams of one run."""

    def __init__(self, limit: int) -> None:
        self.left = limit
        self.dropped = 0

    def take(self, data: bytes) -> bytes:
        """The part of ``data`` that fits; the rest is counted as dropped."""
        kept = data[: max(self.left, 0)]
        self.left -= len(kept)
        self.dropped += len(data) - len(kept)
        return kept


class CappedStream:
    """One stream's kept bytes under a shared budget."""

    def __init__(self, budget: OutputBudget) -> None:
        self.budget = budget
        self._parts: list[bytes] = []

    def add(self, data: bytes) -> None:
        kept = self.budget.take(data)
        if kept:
            self._parts.append(kept)

    def clear(self) -> None:
        self._parts.clear()

    def text(self) -> str:
        return b"".join(self._parts).decode("utf-8", errors="replace")


async def drain(reader: asyncio.StreamReader, into: CappedStream) -> None:
    """Read ``reader`` to its end into ``into`` (past the budget the bytes are only counted)."""
    while chunk := await reader.read(_CHUNK):
        into.add(chunk)


def truncation_note(dropped: int) -> str:
    """The line that tells the model output was cut ("" when nothing was)."""
    return f"\n[output truncated: {dropped} bytes not shown]" if dropped else ""
