"""Weighted fair share between API keys: a freed slot goes to the waiting key served the fewest tokens lately.

``FairSharePolicy`` is a ``QueuePolicy`` (one per model lane) in the spirit of
virtual-token-counter scheduling (Sheng et al., "Fairness in Serving Large
Language Models", OSDI '24; AIBrix's VTC):

- every key has a counter of the tokens it was served (input + output) divided
  by its weight (``KeyPolicy.weight``; 1 by default), so under contention a key
  of weight 2 gets twice the tokens of a key of weight 1;
- a freed slot goes to the oldest waiting request of the key with the lowest
  counter (first come first served within a key; between equal counters, the
  key whose last request took a slot longest ago, then the key seen first);
- a key that starts waiting when it had nobody waiting is lifted to the lowest
  level among the keys that have waiters, so idleness cannot be banked: a key
  back after an hour away does not take every slot until it has caught up, it
  goes next. The level compared is what the keys' finished requests were served:
  a waiting key's requests still running count against it, not against the
  key arriving (so the arriving key goes before it even when the running ones
  turn out shorter than charged);
- counters decay with a half-life (``router.admission.fair_share.half_life_seconds``):
  what a key used a minute ago counts half, so recent usage decides, and a key
  that had a heavy hour is not held back the hour after.

**Charging.** A request is charged when it takes a slot (from the queue or at
once, while nobody waits) and corrected when it ends. The advance is the key's
running mean of what its recent requests were served (input + output tokens,
smoothed over about the last five; ``initial_estimate_tokens`` before the key
has finished any); at the end the advance is replaced by the tokens the request
was really served (what its usage ledger entry counts: the engine's usage, or
for a call cut short, the prompt and the output received). So a long stream
counts from the moment it starts, a key whose requests are long is charged long
ones in advance, and the accounts converge on the real usage. The advance does
not read the request: the prompt's size costs a walk over the whole request
(protobuf's ByteSize: ~1 µs per KB) on the path every request takes. A request
whose usage is unknown (it left before any output was folded) keeps its
advance; one that never reached an engine is refunded.

**Ageing.** Counters are kept in units scaled by 2^((t - epoch) / half-life) at
the time t of each charge, so decaying every counter is one multiplication of
the clock, not a walk over the keys; when the scale reaches 2^``RENORMALISE_HALF_LIVES``
the counters are rescaled to the present and the keys with nobody waiting,
nothing in flight and less than a token left are forgotten (memory is bounded by
the keys seen in that span: 20 minutes at the default half-life).

**Cost.** ``start`` and ``end`` are a dict lookup and a few float operations. The
order among the keys with waiters is a heap of (counter, last served, first
seen) with lazy invalidation (an entry is stale once its key's counter moved),
so pop is O(log k) for k keys waiting, and push O(log k), or O(k) for a key
that starts waiting (its lift reads the waiting keys); within a key, an
insertion-ordered dict as in ``FifoPolicy``. Each router keeps its own
accounts, of the requests it admits.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable

from fleetgate.core.config import FairShareConfig
from fleetgate.router.admission.policy import Advance, Waiter

# The weight of the newest request in a key's running mean of tokens served per request.
MEAN_SMOOTHING = 0.2
# Counters are rescaled to the present (and idle keys forgotten) once the scale reaches 2^this.
RENORMALISE_HALF_LIVES = 20.0
# A key with nobody waiting and nothing in flight is forgotten when its counter decayed below this many tokens.
FORGET_BELOW_TOKENS = 1.0
# The heap is rebuilt from the waiting keys when its stale entries outnumber them this many times (plus slack).
HEAP_SLACK = 32


class _Key:
    """One API key's account in a model's lane: its counter and the advances in it (scaled units), its waiters,
    its requests in flight."""

    __slots__ = ("key_id", "counter", "advanced", "waiters", "in_flight", "mean_tokens", "served_at", "arrival",
                 "version")

    def __init__(self, key_id: str, mean_tokens: float, arrival: int) -> None:
        self.key_id = key_id
        self.counter = 0.0  # weighted tokens served, the advances of the requests running included
        self.advanced = 0.0  # those advances
        self.waiters: dict[Waiter, None] = {}
        self.in_flight = 0
        self.mean_tokens = mean_tokens
        self.served_at = 0  # the policy's tick when a request of this key last took a slot
        self.arrival = arrival  # when the key was first seen, the last tie-break
        self.version = 0  # bumped whenever the key's place in the order changes: older heap entries are stale


_Entry = tuple[float, int, int, int, _Key]


class FairSharePolicy:
    """See the module docstring; ``clock`` (monotonic seconds) is injectable for tests."""

    def __init__(self, settings: FairShareConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self._half_life = settings.half_life_seconds
        self._initial_estimate = float(settings.initial_estimate_tokens)
        self._clock = clock
        self._epoch = clock()
        self._keys: dict[str, _Key] = {}
        self._waiting_keys: set[_Key] = set()
        self._heap: list[_Entry] = []
        self._waiting = 0
        self._ticks = itertools.count(1)
        self._arrivals = itertools.count()

    # -- QueuePolicy: the waiters ------------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._waiting

    def push(self, waiter: Waiter) -> None:
        key = self._key(waiter.key_id)
        if not key.waiters:
            self._lift(key)
            self._waiting_keys.add(key)
            key.waiters[waiter] = None
            self._enter(key)
        else:
            key.waiters[waiter] = None
        self._waiting += 1

    def pop(self) -> Waiter | None:
        heap = self._heap
        while heap:
            _, _, _, version, key = heapq.heappop(heap)
            if version != key.version or not key.waiters:
                continue  # stale: the key's counter moved since, or it has nobody waiting
            waiter = next(iter(key.waiters))
            del key.waiters[waiter]
            self._waiting -= 1
            if key.waiters:
                self._enter(key)
            else:
                self._leave(key)
            return waiter
        return None

    def remove(self, waiter: Waiter) -> None:
        key = self._keys.get(waiter.key_id)
        if key is None or key.waiters.pop(waiter, False) is False:
            return
        self._waiting -= 1
        if not key.waiters:
            self._leave(key)

    # -- QueuePolicy: the accounts -----------------------------------------------------------------------------

    def start(self, key_id: str, weight: float) -> Advance:
        now = self._now()
        key = self._key(key_id)
        key.in_flight += 1
        key.served_at = next(self._ticks)
        advance = Advance(key.mean_tokens / weight, now)
        scaled = advance.tokens * self._scale(now)
        key.counter += scaled
        key.advanced += scaled
        if key.waiters:
            self._enter(key)
        return advance

    def end(self, key_id: str, weight: float, advance: Advance, tokens: int | None) -> None:
        key = self._keys.get(key_id)
        if key is None:
            return
        now = self._now()
        key.in_flight -= 1
        scaled = advance.tokens * self._scale(advance.at)  # as it was charged, in today's units
        key.advanced = max(0.0, key.advanced - scaled) if key.in_flight else 0.0
        if tokens is not None:  # else the advance stands, as usage
            if tokens > 0:
                key.mean_tokens += MEAN_SMOOTHING * (tokens - key.mean_tokens)
            key.counter = max(key.advanced, key.counter - scaled + tokens / weight * self._scale(now))
        if key.waiters:
            self._enter(key)

    # -- reading the accounts (tests, metrics) -----------------------------------------------------------------

    def served(self, key_id: str) -> float:
        """``key_id``'s counter now (its weighted tokens served, the advances of its requests running included),
        decayed to the present; 0 for a key not kept."""
        key = self._keys.get(key_id)
        return key.counter / self._scale(self._clock()) if key is not None else 0.0

    def keys(self) -> int:
        """How many keys' accounts are kept."""
        return len(self._keys)

    # -- inside ----------------------------------------------------------------------------------------------

    def _key(self, key_id: str) -> _Key:
        key = self._keys.get(key_id)
        if key is None:
            key = self._keys[key_id] = _Key(key_id, self._initial_estimate, next(self._arrivals))
        return key

    def _now(self) -> float:
        now = self._clock()
        if now - self._epoch >= RENORMALISE_HALF_LIVES * self._half_life:
            self._renormalise(now)
        return now

    def _scale(self, at: float) -> float:
        """Today's units per token charged at monotonic time ``at``."""
        return float(2.0 ** ((at - self._epoch) / self._half_life))

    def _lift(self, key: _Key) -> None:
        """``key`` starts waiting: what it was served is raised to the least any waiting key was served (their
        finished requests; what they have running counts against them), so it cannot bank idle time."""
        if not self._waiting_keys:
            return
        floor = min(other.counter - other.advanced for other in self._waiting_keys)
        if key.counter - key.advanced < floor:
            key.counter = floor + key.advanced

    def _enter(self, key: _Key) -> None:
        """(Re)place ``key`` in the order; any entry it had is stale from now on."""
        key.version += 1
        heapq.heappush(self._heap, (key.counter, key.served_at, key.arrival, key.version, key))
        if len(self._heap) > 2 * len(self._waiting_keys) + HEAP_SLACK:
            self._rebuild()

    def _leave(self, key: _Key) -> None:
        key.version += 1
        self._waiting_keys.discard(key)

    def _rebuild(self) -> None:
        self._heap = [(k.counter, k.served_at, k.arrival, k.version, k) for k in self._waiting_keys]
        heapq.heapify(self._heap)

    def _renormalise(self, now: float) -> None:
        """Rescale every counter to the present; forget the keys nobody needs any more."""
        scale = self._scale(now)
        self._epoch = now
        for key_id, key in list(self._keys.items()):
            key.counter /= scale
            key.advanced /= scale
            if not key.waiters and not key.in_flight and key.counter < FORGET_BELOW_TOKENS:
                del self._keys[key_id]
        self._rebuild()


def fair_share_policy(settings: FairShareConfig) -> Callable[[], FairSharePolicy]:
    """A factory of one ``FairSharePolicy`` per model lane (``AdmissionQueue(policy=...)``)."""
    return lambda: FairSharePolicy(settings)
