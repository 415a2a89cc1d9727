"""The paced emission of one planned completion: budget, timing, aborts, stop sequences, injected death.

Timing comes from the replica's ``Scheduler``: the first token when the sequence
has been admitted, prefilled and ``ttft_ms`` has passed; each later token one
decode step (``itl_ms``, slower with a larger batch) on; relative ``jitter`` on
both. The sequence leaves the scheduler as soon as its last token is out; usage
reports the prompt tokens the KV cache served. With ``die_after_tokens`` N the
whole replica process exits abruptly once a request has produced N tokens.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
from collections.abc import AsyncIterator, Coroutine, Iterable
from typing import Any

from fleetgate.core import events
from fleetgate.core.config import SimConfig
from fleetgate.core.events import Reason
from fleetgate.replicas.sim_engine.plan import Plan
from fleetgate.replicas.sim_engine.scheduler import Scheduler, Sequence
from fleetgate.replicas.stop_sequences import StopMatcher
from fleetgate.v1 import replica_pb2 as pb

# Time for the gRPC server to flush the last event before an injected death.
_FLUSH_BEFORE_EXIT_SECONDS = 0.2
_DIE_EXIT_CODE = 17


class PacedRun:
    """The paced emission of one plan: budget, timing, aborts, stop sequences, injected death."""

    def __init__(
        self, plan: Plan, sim: SimConfig, rng: random.Random, aborted: asyncio.Event,
        scheduler: Scheduler, sequence: Sequence,
    ) -> None:
        self.plan = plan
        self.sim = sim
        self.scheduler = scheduler
        self.sequence = sequence
        self.rng = rng
        self.aborted = aborted
        self.completion_tokens = 0
        self.reasoning_tokens = 0
        self.reason: Reason = Reason.REASON_STOP
        self.matched_stop = ""

    async def events(self, stops: Iterable[str]) -> AsyncIterator[pb.GenerateEvent]:
        for token in self.plan.reasoning:
            if not await self._next_token():
                break
            self.reasoning_tokens += 1
            yield events.reasoning(token)
        if self.reason == Reason.REASON_STOP:
            stream = self._tool_call_events() if self.plan.tool_calls else self._text_events(stops)
            async for event in stream:
                yield event
        self.scheduler.finish(self.sequence)
        yield events.usage(
            self.plan.prompt_tokens,
            self.completion_tokens,
            self.sequence.cached_tokens,
            self.reasoning_tokens,
            self.sequence.cache_written_tokens,
        )
        yield events.finish(self.reason, self.matched_stop)

    async def _tool_call_events(self) -> AsyncIterator[pb.GenerateEvent]:
        for index, call in enumerate(self.plan.tool_calls):
            if not await self._next_token():
                return
            yield events.tool_call_start(index, call.call_id, call.name)
            for token in call.argument_tokens:
                if not await self._next_token():
                    break
                yield events.tool_call_delta(index, token)
            yield events.tool_call_end(index)
            if self.reason != Reason.REASON_STOP:
                return
        self.reason = Reason.REASON_TOOL_CALLS

    async def _text_events(self, stops: Iterable[str]) -> AsyncIterator[pb.GenerateEvent]:
        matcher = StopMatcher(stops)
        for token in self.plan.text:
            if not await self._next_token():
                break
            ready, matched = matcher.feed(token)
            if ready:
                yield events.text(ready)
            if matched is not None:
                self.reason, self.matched_stop = Reason.REASON_STOP_SEQUENCE, matched
                return
        rest = matcher.flush()
        if rest:
            yield events.text(rest)

    async def _next_token(self) -> bool:
        """Wait for the next token; False (with ``reason`` set) when the budget is spent or the request aborted."""
        if self.completion_tokens >= self.plan.max_tokens:
            self.reason = Reason.REASON_LENGTH
            return False
        if self.completion_tokens == 0:
            aborted = await self._until_aborted(self.scheduler.first_token(self.sequence, self._jitter_factor()))
        else:
            aborted = await self._pause(max(0.0, self.scheduler.itl_ms() * self._jitter_factor()) / 1000.0)
        if aborted:
            self.reason = Reason.REASON_ABORT
            return False
        if self.sim.die_after_tokens is not None and self.completion_tokens >= self.sim.die_after_tokens:
            await _die(self.completion_tokens)
        self.completion_tokens += 1
        return True

    def _jitter_factor(self) -> float:
        if not self.sim.jitter:
            return 1.0
        return 1.0 + self.rng.uniform(-self.sim.jitter, self.sim.jitter)

    async def _until_aborted(self, due: Coroutine[Any, Any, None]) -> bool:
        """Run ``due``; True (and ``due`` cancelled) as soon as the request is aborted."""
        if self.aborted.is_set():
            due.close()
            return True
        task = asyncio.ensure_future(due)
        abort = asyncio.ensure_future(self.aborted.wait())
        try:
            await asyncio.wait((task, abort), return_when=asyncio.FIRST_COMPLETED)
        finally:
            task.cancel()
            abort.cancel()
        if self.aborted.is_set():
            return True
        task.result()  # raises what ``due`` raised
        return False

    async def _pause(self, seconds: float) -> bool:
        """Sleep ``seconds``; True as soon as the request is aborted."""
        if self.aborted.is_set():
            return True
        try:
            await asyncio.wait_for(self.aborted.wait(), seconds)
        except TimeoutError:
            return False
        return True


async def _die(tokens: int) -> None:
    """Injected fault: the replica process exits abruptly, mid-stream."""
    await asyncio.sleep(_FLUSH_BEFORE_EXIT_SECONDS)
    print(f"sim: injected fault die_after_tokens: exiting after {tokens} tokens", file=sys.stderr, flush=True)
    os._exit(_DIE_EXIT_CODE)
