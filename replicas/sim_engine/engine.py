"""``SimEngine``: the sim behind fleetgate's ``Engine`` interface (see the package docstring for what it does).

Per request: plan the answer (``plan``), refuse or inject a fault before
anything is generated, then stream the plan at its pace (``pacing``); ``abort``
and ``stop`` end running requests at their next token.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator

from fleetgate.core import events
from fleetgate.core.config import ModelConfig, SimConfig
from fleetgate.core.events import ErrorCode
from fleetgate.core.registry import Capabilities, Load
from fleetgate.replicas.engine_interface import Engine
from fleetgate.replicas.refusal import Refusal
from fleetgate.replicas.sim_engine.pacing import PacedRun
from fleetgate.replicas.sim_engine.plan import count_prompt_tokens, plan_completion, request_rng
from fleetgate.v1 import replica_pb2 as pb

log = logging.getLogger(__name__)


class SimEngine(Engine):
    """Serves one model name with simulated output; see the package docstring."""

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
            tools=True,
            reasoning=self.sim.reasoning,
            vision=self.model.vision or self.sim.vision,
            structured_output=True,
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

    async def generate(self, request: pb.GenerateRequest) -> AsyncGenerator[pb.GenerateEvent, None]:
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
            run = PacedRun(plan, self.sim, rng, aborted)
            async for event in run.events(request.sampling.stop):
                yield event
        finally:
            self._running.pop(request_id, None)
