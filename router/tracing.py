"""The router's request traces (OpenTelemetry, set up by ``fleetgate.core.tracing``; off by default).

With ``tracing.enabled`` the router's state holds a ``RouterTracing``, and the runner begins one
``RequestTrace`` per call (``ctx.trace``), runs the call's steps through ``RequestTrace.steps`` and ends the
trace from its ``finally``. With tracing off ``state.tracing`` is None: the steps run as they are, ``ctx.trace``
stays None, and no span, context or header is ever made.

The spans of one call (all in the trace of the client's ``traceparent`` when it sent one, else a new trace):

- ``<METHOD> <path>`` (``WEBSOCKET response.create`` on the Responses WebSocket), kind SERVER: the whole
  call, from its arrival to its last byte; its parent is the client's span. ``http.request.method``,
  ``url.path``, ``http.response.status_code``, ``gen_ai.request.model``, ``fleetgate.dialect``,
  ``fleetgate.request_id``, ``fleetgate.stream``, ``fleetgate.replica.id``, ``error.type`` (the error's
  code) for a call answered with an error; status ERROR for a 5xx;
- ``authenticate``: the key lookup (``fleetgate.key_id``, never the secret);
- ``admission``: the key's allowlist and budgets, its rate limits, and the wait for a slot in the model's
  admission queue (``fleetgate.admission.queue_seconds``);
- ``choose_replica``: the routing policy's choice (``fleetgate.replica.id``, ``fleetgate.routing.policy``,
  ``fleetgate.routing.reason``: session / hit / spill / cold for ``prefix`` and ``oracle``, affinity / load
  for ``power_of_two``, ``fleetgate.routing.predicted_cached_share``);
- ``dispatch``, kind CLIENT: the gRPC ``Generate`` call, from opening it to its end (a retry on another
  replica before the first token stays inside it: ``fleetgate.dispatch.attempts``); ``rpc.*``,
  ``server.address``, ``fleetgate.replica.id`` (the replica that served). Its ``traceparent`` travels in the
  call's gRPC metadata, so the replica's ``generate`` span is its child;
- ``first_token``: from the dispatch to the first output reaching the router's client
  (``gen_ai.response.time_to_first_token``: seconds from the call's arrival);
- ``completion``: from the first output to the end, with the usage: ``gen_ai.usage.input_tokens`` /
  ``output_tokens``, ``fleetgate.usage.cached_tokens`` / ``reasoning_tokens``,
  ``gen_ai.response.finish_reasons``, and ``fleetgate.routing.predicted_cached_tokens`` (the policy's
  predicted share of this prompt, when the replica it chose served it).

``first_token`` and ``completion`` are made when the call ends, with the times the runner already keeps
(the request metrics' time to first token, the generation clock), so the streaming loop has nothing to do.
A step is traced by its name (``STEP_SPANS``); steps not named there run without a span.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from fleetgate.core import tracing
from fleetgate.core.config import FleetgateConfig
from fleetgate.router.errors import ApiError
from fleetgate.v1 import replica_pb2 as pb

if TYPE_CHECKING:
    from fleetgate.router.pipeline.context import RequestContext, Step
    from fleetgate.router.state import RouterState

AUTHENTICATE, ADMISSION, CHOOSE_REPLICA, DISPATCH = "authenticate", "admission", "choose_replica", "dispatch"
FIRST_TOKEN, COMPLETION = "first_token", "completion"
# Span name of each traced step, by the step's function (or class) name.
STEP_SPANS = {
    "authenticate": AUTHENTICATE,
    "AuthenticateSocket": AUTHENTICATE,
    "admit": ADMISSION,
    "choose_replica": CHOOSE_REPLICA,
    "dispatch": DISPATCH,
}
GRPC_SERVICE = pb.DESCRIPTOR.services_by_name["Replica"].full_name
WEBSOCKET_SPAN = "WEBSOCKET response.create"


class RouterTracing:
    """This router's tracer; ``begin`` starts a call's trace."""

    def __init__(self, process: tracing.Tracing, policy: str) -> None:
        self.process = process
        self.tracer = process.tracer
        self.policy = policy

    @classmethod
    def from_config(cls, config: FleetgateConfig) -> RouterTracing | None:
        """The router's tracing, exporting as ``config.tracing`` says; None while tracing is off."""
        process = tracing.Tracing.start(config.tracing, "router")
        return cls(process, config.router.routing_policy) if process is not None else None

    def begin(self, ctx: RequestContext) -> RequestTrace:
        return RequestTrace(self, ctx)

    async def shutdown(self) -> None:
        """Export the spans still queued (off the event loop: it waits for the collector), then stop."""
        await asyncio.to_thread(self.process.shutdown)


class RequestTrace:
    """The spans of one call: its root span now, the step spans as the steps run, the rest when it ends."""

    def __init__(self, owner: RouterTracing, ctx: RequestContext) -> None:
        self._owner = owner
        self._tracer = owner.tracer
        http = ctx.http
        # Wall-clock nanoseconds of the call's arrival (the generation clock's perf_counter origin).
        self._origin = ctx.clock.received
        self._origin_ns = time.time_ns() - int((time.perf_counter() - self._origin) * 1e9)
        attributes: dict[str, AttributeValue] = {
            "fleetgate.dialect": ctx.dialect.name, "fleetgate.request_id": ctx.request_id,
        }
        if http is not None:
            name = f"{http.method} {http.url.path}"
            attributes.update({"http.request.method": http.method, "url.path": http.url.path})
            parent = tracing.extract(http.headers)
        else:
            name, parent = WEBSOCKET_SPAN, None
        self.root = self._tracer.start_span(name, context=parent, kind=SpanKind.SERVER, attributes=attributes,
                                            start_time=self._origin_ns)
        self._context = trace.set_span_in_context(self.root)
        self._dispatch: Span | None = None
        self._dispatch_ns = 0

    # -- the steps -------------------------------------------------------------------

    def steps(self, steps: Sequence[Step]) -> list[Step]:
        """``steps``, each named in ``STEP_SPANS`` run in a span of that name."""
        return [self._traced(step) for step in steps]

    def _traced(self, step: Step) -> Step:
        name = STEP_SPANS.get(getattr(step, "__name__", type(step).__name__))
        if name is None:
            return step
        kind = SpanKind.CLIENT if name == DISPATCH else SpanKind.INTERNAL

        async def traced(ctx: RequestContext, state: RouterState) -> None:
            span = self._tracer.start_span(name, context=self._context, kind=kind)
            if name == DISPATCH:
                self._dispatch, self._dispatch_ns = span, time.time_ns()
                _dispatch_attributes(span, ctx)
            try:
                await step(ctx, state)
            except BaseException as exc:
                _failed(span, exc)
                span.end()
                self._dispatch = None
                raise
            self._annotate(name, span, ctx)
            if name != DISPATCH:  # the call's span lasts as long as the call (ended in ``end``)
                span.end()

        return traced

    def _annotate(self, name: str, span: Span, ctx: RequestContext) -> None:
        if name == AUTHENTICATE:
            span.set_attribute("fleetgate.key_id", ctx.key_id)
        elif name == ADMISSION:
            span.set_attribute("fleetgate.admission.queue_seconds", ctx.queue_seconds)
        elif name == CHOOSE_REPLICA and ctx.replica is not None:
            span.set_attribute("fleetgate.replica.id", ctx.replica.replica_id)
            span.set_attribute("fleetgate.routing.policy", self._owner.policy)
            outcome = ctx.routing.outcome if ctx.routing is not None else None
            if outcome is not None and outcome.reason:
                span.set_attribute("fleetgate.routing.reason", outcome.reason)
            if outcome is not None and outcome.predicted_cached_share is not None:
                span.set_attribute("fleetgate.routing.predicted_cached_share", outcome.predicted_cached_share)

    def grpc_metadata(self) -> tuple[tuple[str, str], ...]:
        """The ``traceparent`` / ``tracestate`` of the dispatch span, for the ``Generate`` call's metadata."""
        span = self._dispatch if self._dispatch is not None else self.root
        return tuple(tracing.headers_of(span).items())

    # -- the end ------------------------------------------------------------------------

    def end(self, ctx: RequestContext) -> None:
        """The call ended (from the runner's ``finally``): the generation's spans, then the root's end."""
        now = time.time_ns()
        dispatch = self._dispatch
        if dispatch is not None:
            self._dispatch = None
            self._generation_spans(ctx, now)
            if ctx.replica_id:
                dispatch.set_attribute("fleetgate.replica.id", ctx.replica_id)
            if ctx.event_stream is not None:
                dispatch.set_attribute("fleetgate.dispatch.attempts", ctx.event_stream.attempts)
            dispatch.end(now)
        root = self.root
        root.set_attribute("http.response.status_code", ctx.status)
        if ctx.model:
            root.set_attribute("gen_ai.request.model", ctx.model)
        root.set_attribute("fleetgate.stream", ctx.stream)
        if ctx.replica_id:
            root.set_attribute("fleetgate.replica.id", ctx.replica_id)
        error = ctx.error or (ctx.completion.error if ctx.completion is not None else None)
        if error is not None:
            root.set_attribute("error.type", error.code or error.kind.value)
        if ctx.status >= 500:
            root.set_status(Status(StatusCode.ERROR, error.message if error is not None else None))
        root.end(now)

    def _generation_spans(self, ctx: RequestContext, now: int) -> None:
        first = self._first_output_ns(ctx)
        if first is not None:
            span = self._tracer.start_span(FIRST_TOKEN, context=self._context, start_time=self._dispatch_ns)
            span.set_attribute("gen_ai.response.time_to_first_token", (first - self._origin_ns) / 1e9)
            span.end(first)
        completion = ctx.completion
        if completion is None:
            return
        span = self._tracer.start_span(COMPLETION, context=self._context, start_time=first or self._dispatch_ns)
        usage = completion.usage
        span.set_attributes({
            "gen_ai.usage.input_tokens": usage.prompt_tokens,
            "gen_ai.usage.output_tokens": usage.completion_tokens,
            "fleetgate.usage.cached_tokens": usage.cached_tokens,
            "fleetgate.usage.reasoning_tokens": usage.reasoning_tokens,
            "gen_ai.response.finish_reasons": [_reason(completion.finish_reason)],
        })
        outcome = ctx.routing.outcome if ctx.routing is not None else None
        if outcome is not None and outcome.predicted_cached_share is not None and outcome.replica_id == ctx.replica_id:
            predicted = round(outcome.predicted_cached_share * usage.prompt_tokens)
            span.set_attribute("fleetgate.routing.predicted_cached_tokens", predicted)
        if completion.error is not None:
            span.set_status(Status(StatusCode.ERROR, completion.error.message))
        span.end(now)

    def _first_output_ns(self, ctx: RequestContext) -> int | None:
        """When the first output reached the router's client: a stream's first content event (the request
        metrics' time to first token), a JSON answer's first output folded (the generation clock)."""
        if ctx.observer.ttft_seconds is not None:
            return self._origin_ns + int(ctx.observer.ttft_seconds * 1e9)
        if ctx.clock.first_output is not None:
            return self._origin_ns + int((ctx.clock.first_output - self._origin) * 1e9)
        return None


def _dispatch_attributes(span: Span, ctx: RequestContext) -> None:
    span.set_attributes({"rpc.system": "grpc", "rpc.service": GRPC_SERVICE, "rpc.method": "Generate"})
    if ctx.replica is not None:
        span.set_attribute("server.address", ctx.replica.address)


def _failed(span: Span, exc: BaseException) -> None:
    """A step ended with ``exc``: an ``ApiError`` names its code, anything else is recorded whole."""
    if isinstance(exc, ApiError):
        span.set_attribute("error.type", exc.code or exc.kind.value)
        span.set_status(Status(StatusCode.ERROR, exc.message))
    else:
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, type(exc).__name__))


def _reason(reason: int) -> str:
    """A finish reason's name: stop, length, tool_calls, ..."""
    return pb.Finish.Reason.Name(reason).removeprefix("REASON_").lower()
