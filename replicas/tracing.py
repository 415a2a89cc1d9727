"""The replica's spans (OpenTelemetry, set up by ``fleetgate.core.tracing``; off by default).

With ``tracing.enabled`` a replica holds a ``ReplicaTracing`` and each ``Generate`` call gets a
``GenerateSpan``: span ``generate``, kind SERVER, a child of the router's ``dispatch`` span (whose
``traceparent`` / ``tracestate`` the call's gRPC metadata carries; a call without them starts a trace of its
own). Its attributes: ``fleetgate.replica.id``, ``fleetgate.engine``, ``gen_ai.request.model``,
``fleetgate.request_id``, and from the engine's events ``gen_ai.usage.input_tokens`` / ``output_tokens``,
``fleetgate.usage.cached_tokens`` / ``reasoning_tokens``, ``gen_ai.response.finish_reasons`` (``abort`` when
the router cancelled the call, ``error`` when it failed), ``error.type`` for a refusal or a failure.

``GenerateSpan.engine_headers`` is the span's own trace context, which the replica passes to the engine:
vLLM (``trace_headers`` of ``AsyncLLM.add_request``, its tracing configured by
``replicas/vllm_engine/engine_args.py``) makes its ``llm_request`` span a child of ``generate``; the sim
engine ignores it. With tracing off the servicer holds None and makes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

from opentelemetry.trace import SpanKind, Status, StatusCode

from fleetgate.core import tracing
from fleetgate.core.config import TracingConfig
from fleetgate.v1 import replica_pb2 as pb

GENERATE = "generate"


class ReplicaTracing:
    """This replica's tracer."""

    def __init__(self, process: tracing.Tracing, *, replica_id: str, engine: str) -> None:
        self.process = process
        self.tracer = process.tracer
        self.replica_id = replica_id
        self.engine = engine

    @classmethod
    def from_config(cls, config: TracingConfig, *, replica_id: str, engine: str) -> ReplicaTracing | None:
        """The replica's tracing, exporting as ``config`` says; None while tracing is off."""
        process = tracing.Tracing.start(config, "replica", instance_id=replica_id)
        return cls(process, replica_id=replica_id, engine=engine) if process is not None else None

    def generate_span(self, request: pb.GenerateRequest, metadata: Iterable[tuple[str, str | bytes]]) -> GenerateSpan:
        """The span of one ``Generate`` call whose gRPC metadata is ``metadata``."""
        carrier = {key: value for key, value in metadata if key in tracing.TRACE_HEADERS and isinstance(value, str)}
        return GenerateSpan(self, request, carrier)

    def shutdown(self) -> None:
        """Export what is queued (blocking, up to the exporter's timeout), then stop."""
        self.process.shutdown()


class GenerateSpan:
    """The ``generate`` span of one call: opened with the call, fed its events, ended with it."""

    def __init__(self, owner: ReplicaTracing, request: pb.GenerateRequest, carrier: dict[str, str]) -> None:
        self.span = owner.tracer.start_span(
            GENERATE, context=tracing.extract(carrier), kind=SpanKind.SERVER,
            attributes={
                "fleetgate.replica.id": owner.replica_id, "fleetgate.engine": owner.engine,
                "gen_ai.request.model": request.model, "fleetgate.request_id": request.request_id,
            },
        )

    def engine_headers(self) -> dict[str, str]:
        """This span's trace context, for the engine's own spans."""
        return tracing.headers_of(self.span)

    def observe(self, event: pb.GenerateEvent) -> None:
        """An event the engine sent: the usage and the finish are recorded."""
        if event.HasField("usage"):
            usage = event.usage
            self.span.set_attributes({
                "gen_ai.usage.input_tokens": usage.prompt_tokens,
                "gen_ai.usage.output_tokens": usage.completion_tokens,
                "fleetgate.usage.cached_tokens": usage.cached_tokens,
                "fleetgate.usage.reasoning_tokens": usage.reasoning_tokens,
            })
        elif event.HasField("finish") and event.finish.reason == pb.Finish.REASON_ERROR:
            self.span.set_attribute("error.type", pb.ErrorCode.Name(event.finish.error_code).lower())
            self.span.set_status(Status(StatusCode.ERROR, event.finish.error_message))

    def end(self, reason: str) -> None:
        """The call ended with ``reason`` (a finish reason label, ``abort`` or ``error``)."""
        self.span.set_attribute("gen_ai.response.finish_reasons", [reason])
        if reason == "error":
            self.span.set_status(Status(StatusCode.ERROR))
        self.span.end()
