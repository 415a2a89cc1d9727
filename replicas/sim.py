"""The ``sim`` engine: a GPU-free simulator of an LLM replica, a product feature for load tests and benchmarks.

It speaks the full canonical event protocol with realistic timing and no model,
in the spirit of llm-d's inference simulator, so routers, dashboards and load
tests can be exercised on any machine. Configured by ``SimConfig``:

- timing: ``ttft_ms`` plus ``prefill_ms_per_token`` × prompt tokens before the
  first token, ``itl_ms`` between tokens, each with relative ``jitter``;
- text: deterministic lorem ipsum (``output_tokens`` words, then a natural stop)
  or an echo of the last user message; JSON that validates for
  ``response_format`` json_schema / json_object; words count as tokens;
- tool calls whose arguments validate against the tool's JSON schema, when tools
  are offered and tool_choice is required / named (always) or auto (with
  ``tool_call_probability``): ``tool_call_start``, argument deltas,
  ``tool_call_end``, finish ``tool_calls``;
- reasoning deltas first when ``reasoning`` is on and the request does not turn
  it off (scaled by reasoning effort: low ½, high 2×);
- ``max_tokens`` (finish ``length``, clamped to the context that is left), stop
  sequences (finish ``stop_sequence``, text cut before the match), the context
  length check, images refused unless ``vision``, raw prompts;
- faults: with probability ``error_rate`` a request is refused with
  ``ERROR_CODE_INTERNAL`` as its first event (nothing was generated, so routers
  may retry it elsewhere); with ``die_after_tokens`` N the whole replica process
  exits abruptly (``os._exit``) once a request has produced N tokens, so routers
  see a replica die mid-stream.

Load reports every accepted, unfinished request as running; nothing queues.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import sys
from collections.abc import AsyncIterator

from fleetgate.core import events
from fleetgate.core.config import ModelConfig, SimConfig
from fleetgate.core.events import ErrorCode, Reason
from fleetgate.core.registry import Capabilities, Load
from fleetgate.v1 import replica_pb2 as pb
from fleetgate.replicas.engine import Engine
from fleetgate.replicas.refusal import Refusal
from fleetgate.replicas.sim_plan import Plan, count_prompt_tokens, plan_completion, request_rng
from fleetgate.replicas.stop_sequences import StopMatcher

log = logging.getLogger(__name__)

# Time for the gRPC server to flush the last event before an injected death.
_FLUSH_BEFORE_EXIT_SECONDS = 0.2
_DIE_EXIT_CODE = 17


class SimEngine(Engine):
    """Serves one model name with simulated output; see the module docstring."""

    kind = "sim"

    def __init__(self, model: ModelConfig, replica_id: str) -> None:
        self.model = model
        self.sim: SimConfig = model.sim
        self.replica_id = replica_id
        self._running: dict[str, asyncio.Event] = {}

    async def start(self) -> None:
        log.info("sim engine for %s ready", self.model.name)

    async def stop(self) -> None:
        for aborted in self._running.values():
            aborted.set()

    @property
    def max_context_length(self) -> int:
        return self.sim.max_context_length

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            tools=True, reasoning=self.sim.reasoning, vision=self.model.vision or self.sim.vision, structured_output=True
        )

    def load(self) -> Load:
        return Load(running=len(self._running), waiting=0, kv_cache_usage=-1.0)

    async def count_tokens(self, request: pb.GenerateRequest) -> int:
        return count_prompt_tokens(request)

    async def abort(self, request_id: str) -> bool:
        aborted = self._running.get(request_id)
        if aborted is None:
            return False
        aborted.set()
        return True

    async def generate(self, request: pb.GenerateRequest) -> AsyncIterator[pb.GenerateEvent]:
        rng = request_rng(request, self.sim)
        try:
            plan = plan_completion(request, self.model, rng)
        except Refusal as refusal:
            yield events.error(refusal.code, refusal.message)
            return
        if rng.random() < self.sim.error_rate:
            yield events.error(ErrorCode.ERROR_CODE_INTERNAL, "injected fault: sim.error_rate")
            return
        request_id = request.request_id or f"sim-{id(plan):x}"
        aborted = asyncio.Event()
        self._running[request_id] = aborted
        try:
            yield events.started(plan.prompt_tokens, self.replica_id, plan.max_tokens)
            run = _Run(plan, self.sim, rng, aborted)
            async for event in run.events(request.sampling.stop):
                yield event
        finally:
            self._running.pop(request_id, None)


class _Run:
    """The paced emission of one plan: budget, timing, aborts, stop sequences, injected death."""

    def __init__(self, plan: Plan, sim: SimConfig, rng: random.Random, aborted: asyncio.Event) -> None:
        self.plan = plan
        self.sim = sim
        self.rng = rng
        self.aborted = aborted
        self.completion_tokens = 0
        self.reasoning_tokens = 0
        self.reason: int = Reason.REASON_STOP
        self.matched_stop = ""

    async def events(self, stops: list[str]) -> AsyncIterator[pb.GenerateEvent]:
        for token in self.plan.reasoning:
            if not await self._next_token():
                break
            self.reasoning_tokens += 1
            yield events.reasoning(token)
        if self.reason == Reason.REASON_STOP:
            stream = self._tool_call_events() if self.plan.tool_calls else self._text_events(stops)
            async for event in stream:
                yield event
        yield events.usage(self.plan.prompt_tokens, self.completion_tokens, reasoning_tokens=self.reasoning_tokens)
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

    async def _text_events(self, stops: list[str]) -> AsyncIterator[pb.GenerateEvent]:
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
        if await self._pause(self._delay_seconds()):
            self.reason = Reason.REASON_ABORT
            return False
        if self.sim.die_after_tokens is not None and self.completion_tokens >= self.sim.die_after_tokens:
            await _die(self.completion_tokens)
        self.completion_tokens += 1
        return True

    def _delay_seconds(self) -> float:
        if self.completion_tokens == 0:
            delay_ms = self.sim.ttft_ms + self.sim.prefill_ms_per_token * self.plan.prompt_tokens
        else:
            delay_ms = self.sim.itl_ms
        if self.sim.jitter:
            delay_ms *= 1.0 + self.rng.uniform(-self.sim.jitter, self.sim.jitter)
        return max(0.0, delay_ms) / 1000.0

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
