"""OpenTelemetry set-up shared by routers and replicas: one tracer per process, exporting spans over OTLP/HTTP.

``Tracing.start(config.tracing, component)`` returns None while ``tracing.enabled`` is false (the default),
so callers hold a ``Tracing | None`` and the off path costs one ``is None`` test: no tracer, no span object,
no trace header. On, it builds a tracer provider of its own:

- resource: ``service.name`` ``<tracing.service_name>-<component>`` (router, replica), ``service.namespace``
  fleetgate, ``service.instance.id`` (a replica's id, a router's host and pid), ``service.version``;
- sampler: parent-based, so a request carrying a sampled ``traceparent`` is recorded and an unsampled one
  is not; a trace the router starts itself is kept with probability ``tracing.sample_ratio`` (by trace id);
- exporter: OTLP/HTTP protobuf to ``traces_endpoint`` with ``tracing.headers``, behind the SDK's batch span
  processor (a bounded queue exported from a thread of its own: a collector that is slow or down costs
  dropped spans, never a waiting request; ``OTEL_BSP_*`` tune it).

Why OTLP/HTTP, not OTLP/gRPC: it is the protocol the OTLP spec has SDKs default to, every collector and
hosted backend takes it on 4318 through ordinary HTTP proxies and ingresses, and its exporter does not put
the synchronous gRPC runtime beside the router's and replica's ``grpc.aio`` servers and channels in one
process. vLLM's own tracing is pointed at the same URL with ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/protobuf``
(``replicas/vllm_engine/engine_args.py``), so one collector endpoint serves every part.

The provider is not installed as OpenTelemetry's global one: a vLLM replica's process already has vLLM's
(``set_tracer_provider`` takes only the first), and nothing of fleetgate's reads the global. Propagation is
W3C trace context (``traceparent`` and ``tracestate``) with the SDK's own propagator: ``extract`` reads it
from HTTP headers or gRPC metadata, ``headers_of`` writes a span's into a dict for the next hop.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from fleetgate import __version__
from fleetgate.core.config import TracingConfig

TRACES_PATH = "/v1/traces"
DEFAULT_ENDPOINT = "http://localhost:4318" + TRACES_PATH
TRACES_ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"
# The W3C trace context headers (gRPC metadata keys are these, lower case).
TRACE_HEADERS = ("traceparent", "tracestate")

_PROPAGATOR = TraceContextTextMapPropagator()


def traces_endpoint(config: TracingConfig, environ: Mapping[str, str] = os.environ) -> str:
    """The OTLP/HTTP traces URL spans go to: ``tracing.otlp_endpoint`` (``/v1/traces`` added to a URL without a
    path), else ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` as is, else ``OTEL_EXPORTER_OTLP_ENDPOINT`` plus
    ``/v1/traces``, else the collector on localhost."""
    if config.otlp_endpoint:
        url = config.otlp_endpoint
        return url.rstrip("/") + TRACES_PATH if urlsplit(url).path in ("", "/") else url
    if environ.get(TRACES_ENDPOINT_ENV):
        return environ[TRACES_ENDPOINT_ENV]
    if environ.get(ENDPOINT_ENV):
        return environ[ENDPOINT_ENV].rstrip("/") + TRACES_PATH
    return DEFAULT_ENDPOINT


def service_name(config: TracingConfig, component: str) -> str:
    """``<tracing.service_name>-<component>``: fleetgate-router, fleetgate-replica, fleetgate-vllm."""
    return f"{config.service_name}-{component}"


def extract(carrier: Mapping[str, str]) -> Context:
    """The trace context a caller sent in ``carrier`` (HTTP headers, gRPC metadata); empty when none."""
    return _PROPAGATOR.extract(carrier)


def headers_of(span: trace.Span) -> dict[str, str]:
    """``traceparent`` (and ``tracestate``) naming ``span`` as the parent of the next hop's spans."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
    return carrier


class Tracing:
    """One process's tracer and its provider (which owns the exporter)."""

    def __init__(self, provider: TracerProvider, component: str) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer(f"fleetgate.{component}", __version__)

    @classmethod
    def start(
        cls, config: TracingConfig, component: str, *, instance_id: str | None = None,
        environ: Mapping[str, str] = os.environ,
    ) -> Tracing | None:
        """The process's tracing for ``component`` (router, replica), exporting to ``traces_endpoint``; None
        while tracing is off."""
        if not config.enabled:
            return None
        resource = Resource.create({
            "service.name": service_name(config, component),
            "service.namespace": "fleetgate",
            "service.instance.id": instance_id or f"{socket.gethostname()}-{os.getpid()}",
            "service.version": __version__,
        })
        provider = TracerProvider(resource=resource, sampler=ParentBased(TraceIdRatioBased(config.sample_ratio)))
        exporter = OTLPSpanExporter(endpoint=traces_endpoint(config, environ), headers=config.headers or None)
        provider.add_span_processor(BatchSpanProcessor(exporter))
        return cls(provider, component)

    def shutdown(self) -> None:
        """Export what is queued (blocking, up to the exporter's timeout), then stop exporting."""
        self.provider.shutdown()
