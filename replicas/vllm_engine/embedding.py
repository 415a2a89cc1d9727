"""The vLLM embedding engine: a ``task: embed`` model served by ``AsyncLLM`` with vLLM's pooling runner.

The engine runs with ``runner: pooling`` (``engine_args.build_engine_args``), so vLLM
loads the model as an embedding model (its sentence-transformers pooling and
normalisation when the checkpoint has them: all-MiniLM-L6-v2 mean-pools and
normalises). Per ``Embed`` call: every input is rendered by vLLM's renderer (a text
is tokenized with the model's special tokens; token ids are taken as they are,
checked against the vocabulary), each is checked against the model's length
(``max_model_len``: a longer input is refused, naming it, never truncated), then
all inputs go to the engine at once (``AsyncLLM.encode`` with
``PoolingParams(task="embed")``, one engine request each, batched by vLLM's
scheduler) and the unit vectors come back in input order, cut to ``dimensions``
for a Matryoshka model (``replicas/embeddings.py``). A cancelled call (the router's
client left) aborts the engine requests still running. Generation is refused.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Mapping
from typing import Any

from vllm.exceptions import GracefulHTTPError, VLLMValidationError
from vllm.inputs import TextPrompt, TokensPrompt
from vllm.pooling_params import PoolingParams
from vllm.renderers.params import TokenizeParams
from vllm.v1.engine.async_llm import AsyncLLM
from vllm.v1.engine.exceptions import EngineDeadError

from fleetgate.core import events
from fleetgate.core.config import ModelConfig, TracingConfig
from fleetgate.core.events import ErrorCode
from fleetgate.core.registry import Capabilities, Load
from fleetgate.replicas.embeddings import (
    NOT_A_GENERATION_MODEL,
    EmbedRefusal,
    check_dimensions,
    check_length,
    shaped,
)
from fleetgate.replicas.engine_interface import Engine
from fleetgate.replicas.vllm_engine.engine_args import apply_cpu_defaults, apply_tracing_env, build_engine_args
from fleetgate.replicas.vllm_engine.load_stats import LatestSchedulerStats
from fleetgate.replicas.vllm_engine.priority import engine_priority
from fleetgate.v1 import replica_pb2 as pb

log = logging.getLogger(__name__)


class VllmEmbeddingEngine(Engine):
    """A ``task: embed`` model on vLLM's pooling runner; see the module docstring."""

    kind = "vllm"

    def __init__(self, model: ModelConfig, replica_id: str, *, tracing: TracingConfig | None = None) -> None:
        self.model = model
        self.replica_id = replica_id
        self.tracing = tracing
        self._llm: AsyncLLM | None = None
        self._stats = LatestSchedulerStats()
        self._max_context = int(model.engine_args.get("max_model_len") or 0)
        self._size = 0
        self._vocab_size = 0

    async def start(self) -> None:
        apply_cpu_defaults(self.model)
        if self.tracing is not None:
            apply_tracing_env(self.tracing)
        args = await asyncio.to_thread(build_engine_args, self.model, None, self.tracing)
        self._llm = AsyncLLM.from_engine_args(args, stat_loggers=[self._stats.logger_factory()])
        model_config = self._llm.model_config
        self._max_context = model_config.max_model_len
        self._size = model_config.embedding_size
        self._vocab_size = model_config.get_vocab_size()
        log.info("vLLM embedding engine for %s ready: %d dimensions, %d tokens per input", self.model.name,
                 self._size, self._max_context)

    async def stop(self) -> None:
        llm, self._llm = self._llm, None
        if llm is not None:
            llm.shutdown()

    @property
    def max_context_length(self) -> int:
        return self._max_context

    @property
    def max_num_seqs(self) -> int:
        return self._llm.vllm_config.scheduler_config.max_num_seqs if self._llm else 0

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(embeddings=True)

    def load(self) -> Load:
        return self._stats.load(self._llm.get_num_unfinished_requests() if self._llm else 0)

    async def healthy(self) -> tuple[bool, str]:
        if self._llm is None:
            return False, "engine not started"
        try:
            await self._llm.check_health()
        except EngineDeadError as exc:
            return False, f"engine dead: {exc}"
        return True, ""

    # -- generation is refused ------------------------------------------------------------

    async def count_tokens(self, request: pb.GenerateRequest) -> int:
        raise NOT_A_GENERATION_MODEL

    async def generate(
        self, request: pb.GenerateRequest, trace_headers: Mapping[str, str] | None = None
    ) -> AsyncGenerator[pb.GenerateEvent, None]:
        yield events.error(NOT_A_GENERATION_MODEL.code, NOT_A_GENERATION_MODEL.message)

    async def abort(self, request_id: str) -> bool:
        return False  # an Embed call is aborted by cancelling it

    # -- embeddings -------------------------------------------------------------------------

    async def embed(self, request: pb.EmbedRequest) -> pb.EmbedResponse:
        llm = self._llm
        if llm is None:
            return pb.EmbedResponse(error_code=ErrorCode.ERROR_CODE_INTERNAL, error_message="the engine is not running")
        try:
            check_dimensions(self.model, request.dimensions, self._size)
            engine_inputs = await self._engine_inputs(llm, request)
            priority = engine_priority(self.model.engine_args, request.priority)
            outputs = await asyncio.gather(*(
                self._encode(llm, engine_input, f"{request.request_id or 'embed'}-{index}", priority)
                for index, engine_input in enumerate(engine_inputs)
            ))
        except EmbedRefusal as refused:
            return refused.response()
        except GracefulHTTPError as exc:  # the engine's queue limits
            return pb.EmbedResponse(error_code=ErrorCode.ERROR_CODE_OVERLOADED,
                                    error_message=str(exc) or type(exc).__name__)
        except (VLLMValidationError, ValueError) as exc:
            return pb.EmbedResponse(error_code=ErrorCode.ERROR_CODE_INVALID_REQUEST, error_message=str(exc))
        embeddings = [pb.Embedding(values=shaped(values, request.dimensions), prompt_tokens=tokens)
                      for values, tokens in outputs]
        return pb.EmbedResponse(embeddings=embeddings, prompt_tokens=sum(tokens for _, tokens in outputs))

    async def _engine_inputs(self, llm: AsyncLLM, request: pb.EmbedRequest) -> list[Any]:
        """Each input rendered (tokenized) by vLLM's renderer, checked against the vocabulary and the length."""
        prompts: list[Any] = []
        for index, item in enumerate(request.inputs):
            if item.HasField("tokens"):
                ids = list(item.tokens.ids)
                if any(not 0 <= token_id < self._vocab_size for token_id in ids):
                    raise EmbedRefusal(ErrorCode.ERROR_CODE_INVALID_REQUEST,
                                       f"input[{index}] holds a token id outside the model's vocabulary "
                                       f"(0 to {self._vocab_size - 1})", f"input[{index}]")
                prompts.append(TokensPrompt(prompt_token_ids=ids))
            else:
                prompts.append(TextPrompt(prompt=item.text))
        tokenize = TokenizeParams(max_total_tokens=None, add_special_tokens=True)
        engine_inputs = list(await llm.renderer.render_cmpl_async(prompts, tokenize))
        for index, engine_input in enumerate(engine_inputs):
            check_length(self.model, index, len(engine_input["prompt_token_ids"]), self._max_context)
        return engine_inputs

    async def _encode(
        self, llm: AsyncLLM, engine_input: Any, request_id: str, priority: int
    ) -> tuple[list[float], int]:
        """One input's unit vector and its token count (cancelling aborts the engine request: ``encode``)."""
        final = None
        async for output in llm.encode(engine_input, PoolingParams(task="embed"), request_id, priority=priority):
            final = output  # FINAL_ONLY: the one output, finished
        assert final is not None
        return final.outputs.data.tolist(), len(final.prompt_token_ids)
