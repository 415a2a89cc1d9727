"""The order in which a model's waiting requests get a freed slot: the ``QueuePolicy`` interface and FIFO.

A policy orders waiters and may keep accounts of what each API key was served:
the queue (``queue.py``) owns the bounds, the slots, the timeouts and the
metrics, and tells the policy when a request of a key takes a slot (``start``,
from the queue or at once: the policy may charge the key in advance) and when it
ends (``end``, with that advance and the tokens it was served). FIFO keeps no
accounts; the weighted fair share between keys (``fair_share.py``) orders
waiters by them.
"""

from __future__ import annotations

import asyncio
from typing import Protocol


class Advance:
    """What a policy charged a request's key when it took its slot (``tokens``: weighted tokens, at monotonic
    time ``at``), handed back to ``end``."""

    __slots__ = ("tokens", "at")

    def __init__(self, tokens: float = 0.0, at: float = 0.0) -> None:
        self.tokens = tokens
        self.at = at


NO_ADVANCE = Advance()


class Waiter:
    """One request waiting for a slot: the future the queue resolves when it hands it one, its API key (id,
    metrics label, fair-share weight) and, once it has its slot, what the policy charged it in advance."""

    __slots__ = ("future", "key_id", "key_label", "weight", "advance")

    def __init__(self, future: asyncio.Future[None], key_id: str = "", key_label: str = "",
                 weight: float = 1.0) -> None:
        self.future = future
        self.key_id = key_id
        self.key_label = key_label
        self.weight = weight
        self.advance = NO_ADVANCE


class QueuePolicy(Protocol):
    """The waiters of one model, in the order they are served, and the accounts that order is decided by."""

    def push(self, waiter: Waiter) -> None:
        """A new waiter joins."""

    def pop(self) -> Waiter | None:
        """The waiter to serve next, removed; None when nobody waits."""

    def remove(self, waiter: Waiter) -> None:
        """``waiter`` leaves before being served (timed out, client gone); a waiter not queued is ignored."""

    def __len__(self) -> int: ...

    def start(self, key_id: str, weight: float) -> Advance:
        """A request of ``key_id`` took a slot; returns what the policy charged it in advance (``end`` gets it)."""

    def end(self, key_id: str, weight: float, advance: Advance, tokens: int | None) -> None:
        """That request ended, served ``tokens`` (input + output; None: unknown, the advance stands)."""


class FifoPolicy:
    """First come, first served (an insertion-ordered dict: push, pop and remove are O(1)); no accounts."""

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

    def start(self, key_id: str, weight: float) -> Advance:
        return NO_ADVANCE

    def end(self, key_id: str, weight: float, advance: Advance, tokens: int | None) -> None:
        return None
