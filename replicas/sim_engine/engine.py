"""``SimEngine``: the sim behind fleetgate's ``Engine`` interface (see the package docstring for what it does).

Per request: render the prompt to tokens and hash its blocks (``tokens``,
``block_hashes``), plan the answer (``plan``), refuse or inject a fault before
anything is generated, then queue the sequence in the replica's ``Scheduler``
(over its ``PagedKvCache``) and stream the plan at the scheduler's pace
(``pacing``); ``abort`` and ``stop`` end waiting and running requests at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncGenerator, Mapping

from fleetgate.core import events
from fleetgate.core.config import ModelConfig, SimConfig
from fleetgate.core.events import ErrorCode
from fleetgate.core.registry import Capabilities, Load
from fleetgate.replicas.embeddings import (
    NOT_A_GENERATION_MODEL,
    NOT_AN_EMBEDDING_MODEL,
    EmbedRefusal,
    check_dimensions,
    check_length,
    shaped,
)
from fleetgate.replicas.engine_interface import Engine
from fleetgate.replicas.kv_events import KvEventSink, NullKvEventSink
from fleetgate.replicas.refusal import Refusal
from fleetgate.replicas.sim_engine.embedding import embed_words, input_words
from fleetgate.replicas.sim_engine.kv_cache import PagedKvCache
from fleetgate.replicas.sim_engine.pacing import PacedRun
from fleetgate.replicas.sim_engine.plan import plan_completion, request_rng
from fleetgate.replicas.sim_engine.scheduler import Scheduler, Sequence
from fleetgate.replicas.sim_engine.tokens import count_prompt_tokens, prompt_tokens
from fleetgate.replicas.token_blocks import block_hashes
from fleetgate.v1 import replica_pb2 as pb

log = logging.getLogger(__name__)


class SimEngine(Engine):
    """Serves one model name with simulated output; see the package docstring.

    ``kv_events`` receives the KV cache's events (``kv_events``); by default they are dropped.
    """

    kind = "sim"

    def __init__(self, model: ModelConfig, replica_id: str, kv_events: KvEventSink | None = None) -> None:
        self.model = model
        self.sim: SimConfig = model.sim
        self.replica_id = replica_id
        self.kv_cache = PagedKvCache(
            self.sim.kv_cache_blocks, self.sim.kv_block_size, kv_events or NullKvEventSink(), self.sim.prefix_caching
        )
        self.scheduler = Scheduler(self.sim, self.kv_cache)
        self._aborts: dict[str, asyncio.Event] = {}

    async def start(self) -> None:
        log.info("sim engine for %s ready", self.model.name)

    async def stop(self) -> None:
        for aborted in self._aborts.values():
            aborted.set()

    @property
    def max_context_length(self) -> int:
        return self.sim.max_context_length

    @property
    def max_num_seqs(self) -> int:
        return self.sim.max_num_seqs

    @property
    def capabilities(self) -> Capabilities:
        if self.embeds:
            return Capabilities(embeddings=True)
        return Capabilities(
            tools=True,
            reasoning=self.sim.reasoning,
            vision=self.model.vision or self.sim.vision,
            structured_output=True,
        )

    @property
    def embeds(self) -> bool:
        """A ``task: embed`` model: it answers ``embed`` and refuses generation."""
        return self.model.task == "embed"

    def load(self) -> Load:
        return Load(running=self.scheduler.running, waiting=self.scheduler.waiting, kv_cache_usage=self.kv_cache.usage)

    async def count_tokens(self, request: pb.GenerateRequest) -> int:
        if self.embeds:
            raise NOT_A_GENERATION_MODEL
        return count_prompt_tokens(request)

    async def embed(self, request: pb.EmbedRequest) -> pb.EmbedResponse:
        """Deterministic vectors (``embedding``) after the prefill time of all the inputs' tokens plus ``ttft_ms``
        (with ``jitter``); inputs over ``max_context_length`` tokens are refused."""
        if not self.embeds:
            return NOT_AN_EMBEDDING_MODEL.response()
        size = self.sim.embedding_dimensions
        words = [input_words(item) for item in request.inputs]
        try:
            check_dimensions(self.model, request.dimensions, size)
            for index, item_words in enumerate(words):
                check_length(self.model, index, len(item_words), self.sim.max_context_length)
        except EmbedRefusal as refused:
            return refused.response()
        tokens = sum(len(w) for w in words)
        rng = random.Random(f"{self.sim.seed}:{request.request_id}")
        prefill_ms = tokens * (self.sim.prefill_ms_per_token + self.sim.prefill_ms_per_1k_tokens / 1000)
        jitter = 1.0 + rng.uniform(-self.sim.jitter, self.sim.jitter) if self.sim.jitter else 1.0
        await asyncio.sleep((self.sim.ttft_ms + prefill_ms) * jitter / 1000)
        embeddings = [
            pb.Embedding(values=shaped(embed_words(w, size, self.sim.seed), request.dimensions), prompt_tokens=len(w))
            for w in words
        ]
        return pb.EmbedResponse(embeddings=embeddings, prompt_tokens=tokens)

    async def abort(self, request_id: str) -> bool:
        aborted = self._aborts.get(request_id)
        if aborted is None:
            return False
        aborted.set()
        return True

    async def cached_prefix(self, request: pb.GenerateRequest) -> pb.CachedPrefixResponse:
        tokens = prompt_tokens(request)
        if not self.sim.prefix_caching:
            return pb.CachedPrefixResponse(prompt_tokens=len(tokens), supported=True)
        hashes = block_hashes(tokens, self.sim.kv_block_size)
        cached = self.kv_cache.cached_prefix(hashes, len(tokens)) * self.sim.kv_block_size
        return pb.CachedPrefixResponse(cached_tokens=cached, prompt_tokens=len(tokens), supported=True)

    def reset_prefix_cache(self) -> bool:
        """Forget every cached block (vLLM's ``reset_prefix_cache``); False while requests hold blocks."""
        return self.kv_cache.reset()

    async def generate(
        self, request: pb.GenerateRequest, trace_headers: Mapping[str, str] | None = None
    ) -> AsyncGenerator[pb.GenerateEvent, None]:
        # The sim makes no spans of its own (the replica's generate span covers it): trace_headers are unused.
        if self.embeds:
            yield events.error(NOT_A_GENERATION_MODEL.code, NOT_A_GENERATION_MODEL.message)
            return
        rng = request_rng(request, self.sim)
        tokens = prompt_tokens(request)
        try:
            plan = plan_completion(request, self.model, rng, prompt_tokens=len(tokens))
        except Refusal as refusal:
            yield events.error(refusal.code, refusal.message)
            return
        if rng.random() < self.sim.error_rate:
            yield events.error(ErrorCode.ERROR_CODE_INTERNAL, "injected fault: sim.error_rate")
            return
        total_tokens = plan.prompt_tokens + plan.completion_tokens
        if not self.scheduler.fits(total_tokens):
            yield events.error(
                ErrorCode.ERROR_CODE_CONTEXT_LENGTH_EXCEEDED,
                f"this request needs {total_tokens} tokens of KV cache; the sim's holds "
                f"{self.sim.kv_cache_blocks * self.sim.kv_block_size} (sim.kv_cache_blocks × sim.kv_block_size)",
            )
            return
        prompt_hashes = block_hashes(tokens, self.sim.kv_block_size) if self.sim.prefix_caching else []
        sequence = Sequence(prompt_hashes, plan.prompt_tokens, total_tokens, self.sim.kv_block_size, request.priority)
        del tokens
        self.kv_cache.events.prompt(request.prefix, prompt_hashes, plan.prompt_tokens, self.sim.kv_block_size)
        request_id = request.request_id or f"sim-{id(plan):x}"
        aborted = asyncio.Event()
        self._aborts[request_id] = aborted
        try:
            self.scheduler.enqueue(sequence)
            yield events.started(plan.prompt_tokens, self.replica_id, plan.max_tokens)
            run = PacedRun(plan, self.sim, rng, aborted, self.scheduler, sequence)
            async for event in run.events(request.sampling.stop):
                yield event
        finally:
            self.scheduler.finish(sequence)
            self._aborts.pop(request_id, None)
