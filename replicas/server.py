"""The replica's gRPC server: service ``fleetgate.v1.Replica`` over one ``Engine``.

``Generate`` streams the engine's canonical events. When the client cancels the
call (a router whose client disconnected, or a deadline), the handler is
cancelled and the engine's event iterator is closed at once, which aborts the
request in the engine. ``Abort`` aborts by request id. ``Info``, ``Health``,
``CountTokens``, ``CachedPrefix`` and ``Embed`` (a unary call: an embedding model's vectors, a cancelled
call cancels the engine's work) answer from the engine. The servicer keeps the replica-level
Prometheus metrics (``replicas/metrics.py``) current. A replica with a token
(``replica.auth_token``) serves only calls that carry it (``replicas/auth.py``).
With tracing on, each ``Generate`` call runs in a ``generate`` span, a child of the
router's (``replicas/tracing.py``), whose trace context is passed to the engine.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import grpc

from fleetgate.core import grpc_options
from fleetgate.core.events import ErrorCode
from fleetgate.core.events import error as error_event
from fleetgate.core.registry import Load
from fleetgate.replicas import metrics
from fleetgate.replicas.auth import TokenInterceptor
from fleetgate.replicas.engine_interface import Engine
from fleetgate.replicas.ports import bind_first_free
from fleetgate.replicas.refusal import Refusal
from fleetgate.replicas.tracing import GenerateSpan, ReplicaTracing
from fleetgate.v1 import replica_pb2 as pb
from fleetgate.v1 import replica_pb2_grpc

log = logging.getLogger(__name__)

# The error a Generate call ends with when the engine raised (its exception is logged, never sent).
ENGINE_FAILURE_MESSAGE = "the engine failed on this request"

_REASON_LABELS = {value: name.removeprefix("REASON_").lower() for name, value in pb.Finish.Reason.items()}


def finish_reason_label(reason: int) -> str:
    """Metric label for a finish reason: ``stop``, ``length``, ``tool_calls``, ... ."""
    return _REASON_LABELS.get(reason, "unspecified")


def load_within(load: Load, in_flight: int) -> Load:
    """``load`` bounded by the Generate calls in flight: the engine serves nothing else.

    An engine's counts can lag (vLLM's scheduler reports them only when it steps,
    so its last report can still hold a request that has finished); the server's
    own count is exact. Running and waiting together never exceed it, and with
    nothing in flight both are 0.
    """
    running = min(load.running, in_flight)
    waiting = min(load.waiting, in_flight - running)
    return Load(running=running, waiting=waiting, kv_cache_usage=load.kv_cache_usage)


class ReplicaServicer(replica_pb2_grpc.ReplicaServicer):
    """Serves one engine as one replica; counts what is in flight."""

    def __init__(
        self, engine: Engine, *, replica_id: str, model_name: str, tracing: ReplicaTracing | None = None
    ) -> None:
        self.engine = engine
        self.replica_id = replica_id
        self.model_name = model_name
        self.tracing = tracing
        self.in_flight = 0
        self.draining = False
        self._labels = {"model": model_name, "replica": replica_id}
        # Series exist (at zero) from the start, not only after the first request.
        metrics.IN_FLIGHT.labels(**self._labels).set(0)
        for counter in (metrics.PROMPT_TOKENS, metrics.GENERATED_TOKENS, metrics.ABORTS):
            counter.labels(**self._labels)

    def current_load(self) -> Load:
        """The engine's load bounded by the calls in flight (``load_within``), also written to the load gauges."""
        load = load_within(self.engine.load(), self.in_flight)
        metrics.RUNNING.labels(**self._labels).set(load.running)
        metrics.WAITING.labels(**self._labels).set(load.waiting)
        metrics.KV_CACHE_USAGE.labels(**self._labels).set(load.kv_cache_usage)
        return load

    async def Generate(
        self, request: pb.GenerateRequest, context: grpc.aio.ServicerContext[pb.GenerateRequest, pb.GenerateEvent]
    ) -> None:
        # Written with context.write (not as an async generator) so that a client
        # cancellation raises CancelledError right here and the engine stream is
        # closed before the handler returns.
        self.in_flight += 1
        metrics.IN_FLIGHT.labels(**self._labels).set(self.in_flight)
        span: GenerateSpan | None = None
        if self.tracing is None:
            events = self.engine.generate(request)
        else:  # tracing on: the call's span, a child of the router's; the engine's spans its children
            span = self.tracing.generate_span(request, context.invocation_metadata() or ())
            events = self.engine.generate(request, span.engine_headers())
        reason_label = "abort"  # stays so when the client goes away before the finish
        finished = False
        try:
            async for event in events:
                self._count(event)
                if span is not None:
                    span.observe(event)
                if event.HasField("finish"):
                    finished = True
                    reason_label = finish_reason_label(event.finish.reason)
                await context.write(event)
        except asyncio.CancelledError:
            metrics.ABORTS.labels(**self._labels).inc()
            raise
        except Exception:  # an engine bug must still end the stream the documented way
            # Logged here in full; the client sees no exception text (it may quote internals or the request).
            log.exception("engine failed on request %s", request.request_id)
            if not finished:
                reason_label = "error"
                await context.write(error_event(ErrorCode.ERROR_CODE_INTERNAL, ENGINE_FAILURE_MESSAGE))
        finally:
            await events.aclose()
            self.in_flight -= 1
            metrics.IN_FLIGHT.labels(**self._labels).set(self.in_flight)
            metrics.REQUESTS.labels(reason=reason_label, **self._labels).inc()
            self.current_load()
            if span is not None:
                span.end(reason_label)

    def _count(self, event: pb.GenerateEvent) -> None:
        if event.HasField("usage"):
            metrics.PROMPT_TOKENS.labels(**self._labels).inc(event.usage.prompt_tokens)
            metrics.GENERATED_TOKENS.labels(**self._labels).inc(event.usage.completion_tokens)

    async def Abort(
        self, request: pb.AbortRequest, context: grpc.aio.ServicerContext[pb.AbortRequest, pb.AbortResponse]
    ) -> pb.AbortResponse:
        found = await self.engine.abort(request.request_id)
        if found:
            metrics.ABORTS.labels(**self._labels).inc()
        return pb.AbortResponse(found=found)

    async def Health(
        self, request: pb.HealthRequest, context: grpc.aio.ServicerContext[pb.HealthRequest, pb.HealthResponse]
    ) -> pb.HealthResponse:
        if self.draining:
            return pb.HealthResponse(healthy=False, detail="draining")
        healthy, detail = await self.engine.healthy()
        return pb.HealthResponse(healthy=healthy, detail=detail)

    async def Info(
        self, request: pb.InfoRequest, context: grpc.aio.ServicerContext[pb.InfoRequest, pb.InfoResponse]
    ) -> pb.InfoResponse:
        load = self.current_load()
        caps = self.engine.capabilities
        return pb.InfoResponse(
            replica_id=self.replica_id,
            model_names=[self.model_name],
            engine=self.engine.kind,
            max_context_length=self.engine.max_context_length,
            capabilities=pb.Capabilities(
                tools=caps.tools, reasoning=caps.reasoning, vision=caps.vision, structured_output=caps.structured_output
            ),
            load=pb.Load(running=load.running, waiting=load.waiting, kv_cache_usage=load.kv_cache_usage),
        )

    async def CountTokens(
        self, request: pb.GenerateRequest, context: grpc.aio.ServicerContext[pb.GenerateRequest, pb.CountTokensResponse]
    ) -> pb.CountTokensResponse:
        try:
            return pb.CountTokensResponse(prompt_tokens=await self.engine.count_tokens(request))
        except Refusal as refused:  # an embedding model counts no chat prompt
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, refused.message)

    async def Embed(
        self, request: pb.EmbedRequest, context: grpc.aio.ServicerContext[pb.EmbedRequest, pb.EmbedResponse]
    ) -> pb.EmbedResponse:
        """The engine's embeddings (or refusal) of ``request``; a cancelled call cancels the engine's work."""
        self.in_flight += 1
        metrics.IN_FLIGHT.labels(**self._labels).set(self.in_flight)
        outcome = "abort"  # stays so when the client goes away
        try:
            reply = await self.engine.embed(request)
            outcome = "error" if reply.error_code else "stop"
        except asyncio.CancelledError:
            metrics.ABORTS.labels(**self._labels).inc()
            raise
        except Exception:  # logged in full; the client sees no exception text
            log.exception("engine failed to embed request %s", request.request_id)
            outcome = "error"
            reply = pb.EmbedResponse(error_code=ErrorCode.ERROR_CODE_INTERNAL, error_message=ENGINE_FAILURE_MESSAGE)
        finally:
            self.in_flight -= 1
            metrics.IN_FLIGHT.labels(**self._labels).set(self.in_flight)
            metrics.REQUESTS.labels(reason=outcome, **self._labels).inc()
            self.current_load()
        metrics.PROMPT_TOKENS.labels(**self._labels).inc(reply.prompt_tokens)
        reply.replica_id = self.replica_id
        return reply

    async def CachedPrefix(
        self,
        request: pb.GenerateRequest,
        context: grpc.aio.ServicerContext[pb.GenerateRequest, pb.CachedPrefixResponse],
    ) -> pb.CachedPrefixResponse:
        return await self.engine.cached_prefix(request)


@dataclass
class ReplicaServer:
    """A running gRPC server; ``address`` is what the replica advertises in the registry."""

    server: grpc.aio.Server
    servicer: ReplicaServicer
    host: str
    port: int
    address: str

    async def stop(self, grace: float) -> None:
        """Refuse new calls, let running ones finish for up to ``grace`` seconds, then cancel them."""
        self.servicer.draining = True
        await self.server.stop(grace)


async def start_replica_server(
    engine: Engine,
    *,
    replica_id: str,
    model_name: str,
    host: str = "127.0.0.1",
    port: int = 0,
    port_search_span: int = 1,
    advertise_host: str | None = None,
    auth_token: str | None = None,
    tracing: ReplicaTracing | None = None,
) -> ReplicaServer:
    """Serve ``engine`` on ``host:port`` (0 picks a free port) and return once it listens.

    With ``port_search_span`` above 1, ``port`` is a base: the first free port of
    that many from it is taken (``replicas/ports.py``). ``advertise_host`` is the
    host other machines reach it on, when ``host`` is a wildcard such as ``0.0.0.0``.
    With ``auth_token``, calls without it are refused (``replicas/auth.py``). With ``tracing``, calls are
    traced (``replicas/tracing.py``).
    """
    server = grpc.aio.server(
        interceptors=[TokenInterceptor(auth_token)] if auth_token is not None else None,
        options=[
            ("grpc.so_reuseport", 0),
            # The message size limit and keepalive the routers use (fleetgate/core/grpc_options.py).
            *grpc_options.SERVER_OPTIONS,
        ]
    )
    servicer = ReplicaServicer(engine, replica_id=replica_id, model_name=model_name, tracing=tracing)
    replica_pb2_grpc.add_ReplicaServicer_to_server(servicer, server)

    def bind(candidate: int) -> int:
        try:
            bound = server.add_insecure_port(f"{host}:{candidate}")
        except RuntimeError as exc:  # grpcio's "Failed to bind to address"
            raise OSError(f"cannot bind gRPC server to {host}:{candidate}: {exc}") from exc
        if bound == 0:
            raise OSError(f"cannot bind gRPC server to {host}:{candidate}")
        return bound

    bound = bind_first_free(bind, host, port, port_search_span)
    await server.start()
    address = f"{advertise_host or host}:{bound}"
    log.info("replica %s serving %s on %s", replica_id, model_name, address)
    return ReplicaServer(server=server, servicer=servicer, host=host, port=bound, address=address)
