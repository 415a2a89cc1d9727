"""The sim's continuous-batching scheduler: admission in arrival or priority order, one prefill at a time,
batch-aware decode.

A sequence is admitted when fewer than ``max_num_seqs`` run and the KV cache
(``kv_cache``) can give it its blocks; until then it waits, first come first
served (a head that does not fit holds back those behind it, like vLLM's FCFS
scheduler), or with ``scheduling_policy: priority`` in the order of (its
request's ``priority``, arrival): lower first, as vLLM's priority scheduler
orders its waiting queue (the sim does not preempt running sequences for a
waiting one). Admitted, it is running. Its prefill costs time for its *uncached*
prompt tokens only (``prefill_ms_per_1k_tokens`` / 1000 + ``prefill_ms_per_token``
per token) and prefills run one at a time, in order (prefill is compute-bound:
a replica prefills at one rate, however many prompts it holds); then its prompt
blocks are cached and its first token follows ``ttft_ms`` later. So the time to
first token is the queue wait + the prefills ahead of it + its own + ``ttft_ms``.
Each later token takes ``itl_ms`` × (1 + ``itl_batch_penalty`` × (running − 1)).
A finished sequence releases its slot and blocks, and the queue moves.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from enum import Enum

from fleetgate.core.config import SimConfig
from fleetgate.replicas.sim_engine.kv_cache import Allocation, PagedKvCache


class State(Enum):
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"


@dataclass(eq=False)
class Sequence:
    """One request in the scheduler: its prompt blocks, the tokens it reserves, where it is."""

    prompt_hashes: list[int]
    prompt_tokens: int
    total_tokens: int  # prompt + planned completion
    block_size: int
    # The request's priority (GenerateRequest.priority): orders the waiting queue under scheduling_policy priority.
    priority: int = 0
    state: State = State.WAITING
    allocation: Allocation | None = None
    admitted: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    @property
    def cached_tokens(self) -> int:
        """Prompt tokens served from the cache (0 until admitted)."""
        return self.allocation.cached_tokens if self.allocation else 0

    @property
    def cache_written_tokens(self) -> int:
        """Prompt tokens its prefill put into the cache (its uncached full blocks; 0 until prefilled)."""
        return len(self.allocation.committed) * self.block_size if self.allocation else 0


class Scheduler:
    """Running and waiting sequences of one sim replica (see the module docstring)."""

    def __init__(self, sim: SimConfig, kv_cache: PagedKvCache) -> None:
        self.sim = sim
        self.kv_cache = kv_cache
        self.running = 0
        self._waiting: deque[Sequence] = deque()
        self._prefill_lane = asyncio.Lock()
        self._prefill_ms_per_token = sim.prefill_ms_per_token + sim.prefill_ms_per_1k_tokens / 1000
        self._by_priority = sim.scheduling_policy == "priority"

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def fits(self, total_tokens: int) -> bool:
        """Whether a sequence of ``total_tokens`` can ever hold its blocks."""
        return self.kv_cache.blocks_for(total_tokens) <= self.kv_cache.num_blocks

    def enqueue(self, sequence: Sequence) -> None:
        """Queue ``sequence`` (after those of its priority and better ones, under the priority policy); it is
        admitted at once when it fits and nothing waits before it."""
        waiting = self._waiting
        if self._by_priority:
            place = len(waiting)
            while place and waiting[place - 1].priority > sequence.priority:
                place -= 1
            waiting.insert(place, sequence)
        else:
            waiting.append(sequence)
        self._admit_waiting()

    async def first_token(self, sequence: Sequence, jitter_factor: float = 1.0) -> None:
        """Return when ``sequence``'s first token is due: admitted, prefilled (its blocks cached), ``ttft_ms`` on."""
        await asyncio.shield(sequence.admitted)  # a cancelled waiter leaves the queue in ``finish``
        assert sequence.allocation is not None
        prefill_seconds = self.prefill_ms(sequence) * jitter_factor / 1000
        if prefill_seconds > 0:
            async with self._prefill_lane:
                await asyncio.sleep(prefill_seconds)
        self.kv_cache.commit(sequence.allocation)
        await asyncio.sleep(max(0.0, self.sim.ttft_ms * jitter_factor) / 1000)

    def prefill_ms(self, sequence: Sequence) -> float:
        """Prefill time of ``sequence``'s uncached prompt tokens."""
        return (sequence.prompt_tokens - sequence.cached_tokens) * self._prefill_ms_per_token

    def itl_ms(self) -> float:
        """Time of one decode step at the current batch."""
        if not self.sim.itl_batch_penalty:
            return self.sim.itl_ms
        return self.sim.itl_ms * (1.0 + self.sim.itl_batch_penalty * max(0, self.running - 1))

    def finish(self, sequence: Sequence) -> None:
        """``sequence`` is done (finished, aborted or closed): it leaves the queue or frees its slot and blocks."""
        if sequence.state is State.WAITING:
            self._waiting.remove(sequence)
            sequence.admitted.cancel()
        elif sequence.state is State.RUNNING:
            assert sequence.allocation is not None
            self.kv_cache.release(sequence.allocation)
            self.running -= 1
            self._admit_waiting()
        sequence.state = State.FINISHED

    def _admit_waiting(self) -> None:
        while self._waiting and self.running < self.sim.max_num_seqs:
            head = self._waiting[0]
            allocation = self.kv_cache.allocate(head.prompt_hashes, head.prompt_tokens, head.total_tokens)
            if allocation is None:
                return
            self._waiting.popleft()
            head.allocation = allocation
            head.state = State.RUNNING
            self.running += 1
            head.admitted.set_result(None)
