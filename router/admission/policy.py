"""The order in which a model's waiting requests get a freed slot: the ``QueuePolicy`` interface and FIFO.

A policy only orders waiters; the queue (``queue.py``) owns the bounds, the
slots, the timeouts and the metrics. A fair-share policy between API keys
(issue 15) implements the same four methods over the waiters' ``key_id``.
"""

from __future__ import annotations

import asyncio
from typing import Protocol


class Waiter:
    """One request waiting for a slot: the future the queue resolves when it hands it one, and its API key."""

    __slots__ = ("future", "key_id")

    def __init__(self, future: asyncio.Future[None], key_id: str = "") -> None:
        self.future = future
        self.key_id = key_id


class QueuePolicy(Protocol):
    """The waiters of one model, in the order they are served."""

    def push(self, waiter: Waiter) -> None:
        """A new waiter joins."""

    def pop(self) -> Waiter | None:
        """The waiter to serve next, removed; None when nobody waits."""

    def remove(self, waiter: Waiter) -> None:
        """``waiter`` leaves before being served (timed out, client gone); a waiter not queued is ignored."""

    def __len__(self) -> int: ...


class FifoPolicy:
    """First come, first served (an insertion-ordered dict: push, pop and remove are O(1))."""

    def __init__(self) -> None:
        self._waiters: dict[Waiter, None] = {}

    def push(self, waiter: Waiter) -> None:
        self._waiters[waiter] = None

    def pop(self) -> Waiter | None:
        if not self._waiters:
            return None
        waiter = next(iter(self._waiters))
        del self._waiters[waiter]
        return waiter

    def remove(self, waiter: Waiter) -> None:
        self._waiters.pop(waiter, None)

    def __len__(self) -> int:
        return len(self._waiters)
