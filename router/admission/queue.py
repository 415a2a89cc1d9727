"""``AdmissionQueue``: per model, a bound on requests in flight and a bounded queue with a maximum wait.

``admit(model, ...)`` returns a ``Slot`` at once while the model has a free
slot and nobody waits (the fast path: a dict lookup, a sum over the model's
healthy replicas, a counter, the policy's advance charge); otherwise the request
waits in the model's ``QueuePolicy`` (``router.admission.policy``: ``fair_share``
or ``fifo``) until a slot frees (``Slot.release``, which hands it straight
to the next waiter), its client goes away (``ClientLeft``), or
``max_wait_seconds`` pass (``Shed``, ``wait_timeout``); a request that finds
``max_queued`` waiting is shed at once (``queue_full``). While anyone waits,
each waiter also re-reads the capacity every ``recheck_seconds`` (a replica that
joined adds slots without any request ending), and a new arrival hands slots it
finds free to those already waiting before it queues. A model without a healthy
replica and without waiters is not admitted here: the replica choice answers it
(503). A waiter holds only a future, its key (id, label, weight) and its policy entry.

The policy is told when a request of a key takes a slot and when it ends, with
the tokens it was served (``Slot.release(tokens=...)``): the fair share between
keys (``fair_share.py``) keeps its accounts so; FIFO ignores them. The requests
of each key waiting are the gauge ``fleetgate_admission_waiting_by_key``, its
key label bounded by the router's ``KeyLabels`` (the caller passes the label).

``Slot.release`` is idempotent: the pipeline calls it once the call ends, however
it ends (a retry on another replica keeps the same model slot).
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fleetgate.core.config import AdmissionConfig
from fleetgate.core.registry import ReplicaRecord
from fleetgate.router import metrics
from fleetgate.router.admission.capacity import model_slots
from fleetgate.router.admission.fair_share import fair_share_policy
from fleetgate.router.admission.policy import Advance, FifoPolicy, QueuePolicy, Waiter
from fleetgate.router.errors import ApiError, ErrorKind
from fleetgate.router.request_metrics import CLIENT_CLOSED
from fleetgate.router.usage.key_labels import ANONYMOUS_KEY


def queue_policy(settings: AdmissionConfig) -> Callable[[], QueuePolicy]:
    """The factory of each model lane's policy that ``router.admission.policy`` names."""
    if settings.policy == "fifo":
        return FifoPolicy
    return fair_share_policy(settings.fair_share)


class ShedReason(enum.StrEnum):
    QUEUE_FULL = "queue_full"
    WAIT_TIMEOUT = "wait_timeout"


class Shed(Exception):
    """The request is refused for overload (the dialect answers 429 / 529 with Retry-After)."""

    def __init__(self, reason: ShedReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class ClientLeft(ApiError):
    """The client went away while its request was queued (499: nobody reads the answer; not an error)."""

    def __init__(self) -> None:
        super().__init__(CLIENT_CLOSED, ErrorKind.API_ERROR, "client closed the request while it was queued")


class _Lane:
    """One model's admission state and its metrics' children."""

    __slots__ = ("model", "label", "in_flight", "waiters", "depth", "admitted", "wait", "queue_full", "wait_timeout",
                 "left", "by_key")

    def __init__(self, model: str, label: str, waiters: QueuePolicy) -> None:
        self.model = model
        self.label = label
        self.in_flight = 0
        self.waiters = waiters
        self.depth = metrics.ADMISSION_QUEUE_DEPTH.labels(model=label)
        self.admitted = metrics.ADMISSION_IN_FLIGHT.labels(model=label)
        self.wait = metrics.ADMISSION_WAIT.labels(model=label)
        self.queue_full = metrics.ADMISSION_SHED.labels(model=label, reason=ShedReason.QUEUE_FULL.value)
        self.wait_timeout = metrics.ADMISSION_SHED.labels(model=label, reason=ShedReason.WAIT_TIMEOUT.value)
        self.left = metrics.ADMISSION_LEFT.labels(model=label)
        self.by_key: dict[str, Any] = {}  # key label -> its fleetgate_admission_waiting_by_key child

    def waiting_of(self, key_label: str) -> Any:
        """The waiting-by-key gauge child of ``key_label`` (made on first use)."""
        child = self.by_key.get(key_label)
        if child is None:
            child = self.by_key[key_label] = metrics.ADMISSION_WAITING_BY_KEY.labels(model=self.label,
                                                                                      key_id=key_label)
        return child


class Slot:
    """A request's place among its model's requests in flight; ``release(tokens=...)`` frees it (once), telling
    the policy the tokens (input + output) the request was served (None: unknown)."""

    __slots__ = ("_queue", "_lane", "_held", "_key_id", "_weight", "_advance")

    def __init__(self, queue: AdmissionQueue, lane: _Lane, key_id: str, weight: float, advance: Advance) -> None:
        self._queue = queue
        self._lane = lane
        self._held = True
        self._key_id = key_id
        self._weight = weight
        self._advance = advance

    def release(self, tokens: int | None = None) -> None:
        if self._held:
            self._held = False
            self._lane.waiters.end(self._key_id, self._weight, self._advance, tokens)
            self._queue._release(self._lane)


class AdmissionQueue:
    def __init__(
        self,
        settings: AdmissionConfig,
        healthy: Callable[[str], Sequence[ReplicaRecord]],
        *,
        recheck_seconds: float = 1.0,
        policy: Callable[[], QueuePolicy] | None = None,
    ) -> None:
        self.settings = settings
        self._healthy = healthy
        self._recheck_seconds = recheck_seconds
        self._policy = policy or queue_policy(settings)
        self._lanes: dict[str, _Lane] = {}

    def capacity(self, model: str) -> int:
        """Requests of ``model`` this router may have in flight now."""
        return model_slots(self._healthy(model), self.settings)

    def in_flight(self, model: str) -> int:
        lane = self._lanes.get(model)
        return lane.in_flight if lane else 0

    def waiting(self, model: str) -> int:
        lane = self._lanes.get(model)
        return len(lane.waiters) if lane else 0

    async def admit(
        self, model: str, label: str, *, key_id: str = "", key_label: str = ANONYMOUS_KEY, weight: float = 1.0,
        until_gone: Callable[[], Awaitable[object]] | None = None,
    ) -> Slot | None:
        """A slot for a request of ``model`` (``label``: its metrics label) of the API key ``key_id`` (``key_label``:
        its metrics label, ``weight``: its fair-share weight), waiting for one if need be; None when admission does
        not apply (off, or no healthy replica and nobody waiting). ``until_gone`` returns when the client goes
        away. Raises ``Shed`` or ``ClientLeft``; see the module docstring."""
        if not self.settings.enabled:
            return None
        lane = self._lanes.get(model)
        if lane is None:
            lane = self._lanes[model] = _Lane(model, label, self._policy())
        capacity = self.capacity(model)
        if lane.waiters and lane.in_flight < capacity:
            self._grant(lane)  # slots appeared (a replica joined) since the waiters' last look: theirs first
        if not lane.waiters:
            if capacity == 0:
                return None
            if lane.in_flight < capacity:
                lane.in_flight += 1
                lane.admitted.set(lane.in_flight)
                lane.wait.observe(0.0)
                return Slot(self, lane, key_id, weight, lane.waiters.start(key_id, weight))
        if len(lane.waiters) >= self.settings.max_queued:
            lane.queue_full.inc()
            raise Shed(ShedReason.QUEUE_FULL, f"Model {model!r} is overloaded: {len(lane.waiters)} requests are "
                                              "already waiting; retry later")
        waiter = Waiter(asyncio.get_running_loop().create_future(), key_id, key_label, weight)
        await self._wait(lane, waiter, until_gone)
        return Slot(self, lane, key_id, weight, waiter.advance)

    async def _wait(self, lane: _Lane, waiter: Waiter, until_gone: Callable[[], Awaitable[object]] | None) -> None:
        """Until ``waiter`` is handed a slot; raises ``Shed`` (waited too long) or ``ClientLeft``."""
        started = time.monotonic()
        deadline = started + self.settings.max_wait_seconds
        lane.waiters.push(waiter)
        lane.depth.set(len(lane.waiters))
        lane.waiting_of(waiter.key_label).inc()
        watch = asyncio.ensure_future(until_gone()) if until_gone is not None else None
        watched: tuple[asyncio.Future[Any], ...] = (waiter.future, watch) if watch else (waiter.future,)
        granted = False
        try:
            while (remaining := deadline - time.monotonic()) > 0:
                await asyncio.wait(watched, timeout=min(remaining, self._recheck_seconds),
                                   return_when=asyncio.FIRST_COMPLETED)
                if waiter.future.done():
                    granted = True
                    break
                if watch is not None and watch.done():
                    lane.left.inc()
                    raise ClientLeft()
                self._grant(lane)
            if not granted:
                lane.wait_timeout.inc()
                raise Shed(ShedReason.WAIT_TIMEOUT, f"Model {lane.model!r} is overloaded: no capacity freed within "
                                                    f"{self.settings.max_wait_seconds:g} s; retry later")
            lane.wait.observe(time.monotonic() - started)
        finally:
            if watch is not None:
                watch.cancel()
            if not granted:
                if waiter.future.done() and not waiter.future.cancelled():
                    # Handed a slot just as it gave up: nothing was served, pass it on.
                    lane.waiters.end(waiter.key_id, waiter.weight, waiter.advance, 0)
                    self._release(lane)
                else:
                    waiter.future.cancel()
                    lane.waiters.remove(waiter)
                    lane.depth.set(len(lane.waiters))
                    lane.waiting_of(waiter.key_label).dec()

    def _grant(self, lane: _Lane) -> None:
        """Hand the free slots of ``lane`` to its waiters, in the policy's order."""
        if not lane.waiters:
            return
        capacity = self.capacity(lane.model)
        while lane.in_flight < capacity and (waiter := lane.waiters.pop()) is not None:
            lane.waiting_of(waiter.key_label).dec()
            if waiter.future.done():
                continue
            lane.in_flight += 1
            waiter.advance = lane.waiters.start(waiter.key_id, waiter.weight)
            waiter.future.set_result(None)
        lane.depth.set(len(lane.waiters))
        lane.admitted.set(lane.in_flight)

    def _release(self, lane: _Lane) -> None:
        lane.in_flight -= 1
        lane.admitted.set(lane.in_flight)
        self._grant(lane)
