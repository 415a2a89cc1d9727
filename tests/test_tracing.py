"""OpenTelemetry traces end to end: a router and a sim replica, each process running the real SDK and its
OTLP/HTTP exporter, export to an OTLP receiver this module runs (an HTTP server decoding the
``ExportTraceServiceRequest`` protobufs of opentelemetry-proto).

A request carrying a client's ``traceparent`` / ``tracestate`` must come back as one trace, the client's:
the router's SERVER span a child of the client's span, its step spans (authenticate, admission,
choose_replica, dispatch, first_token, completion) children of that, and the replica's ``generate`` span a
child of the router's ``dispatch`` span (the context went over gRPC metadata), with the routing choice and
the usage as attributes — streamed and not. A request without one starts a trace of its own. With tracing off
(the default) nothing is exported, even with ``OTEL_EXPORTER_OTLP_ENDPOINT`` pointing at a receiver.
"""

from __future__ import annotations

import gzip
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as SpanProto

from conftest import RedisServer, free_port
from replica_process import ReplicaProcess
from router_process import ROUTER_CONFIG, RouterProcess

pytestmark = pytest.mark.timeout(180)

MODEL = "rt-sim"
CHAT = "/v1/chat/completions"
COLLECTOR_HEADER, COLLECTOR_KEY = "x-collector-key", "k-123"
CLIENT_TRACESTATE = "client=opaque-1"
ROUTER_STEP_SPANS = ("authenticate", "admission", "choose_replica", "dispatch", "first_token", "completion")
# Seconds the spans of a request may take to reach the receiver (the processes export every 100 ms).
EXPORT_WAIT_SECONDS = 15.0


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_span_id: str
    trace_state: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


class OtlpReceiver:
    """An OTLP/HTTP traces endpoint: keeps every span posted to it, and each export's path and headers."""

    def __init__(self) -> None:
        self.port = free_port()
        self.spans: list[ReceivedSpan] = []
        self.exports: list[tuple[str, dict[str, str]]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                request = ExportTraceServiceRequest.FromString(body)
                receiver.add(self.path, dict(self.headers.items()), request)
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add(self, path: str, headers: dict[str, str], request: ExportTraceServiceRequest) -> None:
        spans = []
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    spans.append(ReceivedSpan(
                        service=resource.get("service.name", ""), name=span.name, kind=span.kind,
                        trace_id=span.trace_id.hex(), span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(), trace_state=span.trace_state,
                        start_ns=span.start_time_unix_nano, end_ns=span.end_time_unix_nano,
                        attributes={a.key: _value(a.value) for a in span.attributes},
                    ))
        with self._lock:
            self.exports.append((path, {k.lower(): v for k, v in headers.items()}))
            self.spans.extend(spans)

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        with self._lock:
            return [s for s in self.spans if s.trace_id == trace_id]

    def wait_for_trace(self, trace_id: str, names: set[str]) -> list[ReceivedSpan]:
        """The spans of ``trace_id`` once those named ``names`` have all arrived."""
        deadline = time.monotonic() + EXPORT_WAIT_SECONDS
        while time.monotonic() < deadline:
            spans = self.trace(trace_id)
            if names <= {s.name for s in spans}:
                time.sleep(0.3)  # a straggler of the same trace (the export runs every 100 ms)
                return self.trace(trace_id)
            time.sleep(0.05)
        raise AssertionError(f"trace {trace_id}: {sorted(s.name for s in self.trace(trace_id))}, wanted {names}")

    def __enter__(self) -> OtlpReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Cluster:
    router: RouterProcess
    replica: ReplicaProcess


def tracing_env(receiver: OtlpReceiver, *, enabled: bool) -> dict[str, str]:
    env = {
        # The standard variable: with tracing off it must not turn anything on.
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.base_url,
        # Export every 100 ms instead of every 5 s (the SDK's batch span processor).
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    if enabled:
        env.update({
            "FLEETGATE_TRACING__ENABLED": "true",
            # A URL without a path: /v1/traces is added.
            "FLEETGATE_TRACING__OTLP_ENDPOINT": receiver.base_url,
            "FLEETGATE_TRACING__HEADERS": f"{{{COLLECTOR_HEADER}: {COLLECTOR_KEY}}}",
        })
    return env


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """This module's own Redis: no replica of another module's can serve these routers."""
    server = RedisServer(tmp_path_factory.mktemp("tracing-redis"))
    server.start()
    yield server
    server.stop()


def start_cluster(redis_url: str, env: dict[str, str], logs: Path) -> Cluster:
    replica = ReplicaProcess(ROUTER_CONFIG, MODEL, redis_url, env=env, log_path=logs / "replica.log")
    replica.start()
    router = RouterProcess(ROUTER_CONFIG, redis_url, env=env, log_path=logs / "router.log")
    try:
        router.start()
        router.wait_for_replicas(MODEL, 1)
    except BaseException:
        router.stop()
        replica.stop()
        raise
    return Cluster(router, replica)


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as r:
        yield r


@pytest.fixture(scope="module")
def traced(redis_server: RedisServer, receiver: OtlpReceiver,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = start_cluster(redis_server.url, tracing_env(receiver, enabled=True), tmp_path_factory.mktemp("traced"))
    yield cluster
    cluster.router.stop()
    cluster.replica.stop()


def chat(router: RouterProcess, *, stream: bool, headers: dict[str, str]) -> tuple[httpx.Response, dict[str, Any]]:
    """A chat completion; returns the response and its usage (a stream read to its end)."""
    body: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": "trace me"}], "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
    response = httpx.post(router.base_url + CHAT, json=body, headers=headers, timeout=30.0)
    assert response.status_code == 200, response.text
    if not stream:
        return response, response.json()["usage"]
    chunks = [orjson.loads(line[6:]) for line in response.text.splitlines()
              if line.startswith("data: ") and line != "data: [DONE]"]
    return response, next(c["usage"] for c in chunks if c.get("usage"))


def by_name(spans: list[ReceivedSpan], service: str) -> dict[str, ReceivedSpan]:
    found: dict[str, ReceivedSpan] = {}
    for span in spans:
        if span.service == service:
            assert span.name not in found, f"two {span.name} spans in one trace"
            found[span.name] = span
    return found


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_one_trace_from_the_clients_span_through_the_router_into_the_replica(
    traced: Cluster, receiver: OtlpReceiver, stream: bool
) -> None:
    trace_id, client_span = secrets.token_hex(16), secrets.token_hex(8)
    headers = {"traceparent": f"00-{trace_id}-{client_span}-01", "tracestate": CLIENT_TRACESTATE}
    response, usage = chat(traced.router, stream=stream, headers=headers)
    root_name = f"POST {CHAT}"
    spans = receiver.wait_for_trace(trace_id, {root_name, *ROUTER_STEP_SPANS, "generate"})

    assert {s.service for s in spans} == {"fleetgate-router", "fleetgate-replica"}
    router, replica = by_name(spans, "fleetgate-router"), by_name(spans, "fleetgate-replica")
    root = router[root_name]
    assert root.kind == SpanProto.SPAN_KIND_SERVER
    assert root.parent_span_id == client_span
    assert root.attributes["http.response.status_code"] == 200
    assert root.attributes["fleetgate.stream"] is stream
    assert root.attributes["gen_ai.request.model"] == MODEL
    for name in ROUTER_STEP_SPANS:
        assert router[name].parent_span_id == root.span_id, name
        assert root.start_ns <= router[name].start_ns <= router[name].end_ns <= root.end_ns, name
    # The W3C tracestate travels with the context, to the replica too.
    assert {s.trace_state for s in spans} == {CLIENT_TRACESTATE}

    served_by = response.headers["x-fleetgate-replica"]
    choice = router["choose_replica"].attributes
    assert choice["fleetgate.replica.id"] == served_by == traced.replica.replica_id
    assert choice["fleetgate.routing.policy"] == "prefix"
    assert choice["fleetgate.routing.reason"] in {"session", "hit", "spill", "cold"}
    assert "fleetgate.routing.predicted_cached_share" in choice
    assert router["admission"].attributes["fleetgate.admission.queue_seconds"] >= 0

    dispatch = router["dispatch"]
    assert dispatch.kind == SpanProto.SPAN_KIND_CLIENT
    assert dispatch.attributes["rpc.method"] == "Generate"
    assert dispatch.attributes["fleetgate.replica.id"] == served_by
    assert dispatch.attributes["fleetgate.dispatch.attempts"] == 1
    assert router["first_token"].end_ns <= router["completion"].start_ns + 1
    assert router["first_token"].attributes["gen_ai.response.time_to_first_token"] > 0

    completion = router["completion"].attributes
    assert completion["gen_ai.usage.input_tokens"] == usage["prompt_tokens"] > 0
    assert completion["gen_ai.usage.output_tokens"] == usage["completion_tokens"] > 0
    assert completion["gen_ai.response.finish_reasons"] == ["stop"]
    assert "fleetgate.routing.predicted_cached_tokens" in completion

    (generate,) = replica.values()
    assert generate.name == "generate" and generate.kind == SpanProto.SPAN_KIND_SERVER
    assert generate.parent_span_id == dispatch.span_id
    assert dispatch.start_ns <= generate.start_ns <= dispatch.end_ns
    assert generate.attributes["fleetgate.replica.id"] == served_by
    assert generate.attributes["fleetgate.request_id"] == root.attributes["fleetgate.request_id"]
    assert generate.attributes["gen_ai.usage.input_tokens"] == usage["prompt_tokens"]
    assert generate.attributes["gen_ai.usage.output_tokens"] == usage["completion_tokens"]
    assert generate.attributes["gen_ai.response.finish_reasons"] == ["stop"]

    # Both processes exported to <endpoint>/v1/traces with the configured collector header.
    assert receiver.exports
    assert all(path == "/v1/traces" and headers.get(COLLECTOR_HEADER) == COLLECTOR_KEY
               for path, headers in receiver.exports)


def test_a_request_without_traceparent_starts_its_own_trace(traced: Cluster, receiver: OtlpReceiver) -> None:
    known = {s.trace_id for s in receiver.spans}
    chat(traced.router, stream=False, headers={})
    deadline = time.monotonic() + EXPORT_WAIT_SECONDS
    roots: list[ReceivedSpan] = []
    while not roots and time.monotonic() < deadline:
        time.sleep(0.05)
        roots = [s for s in list(receiver.spans) if s.name == f"POST {CHAT}" and s.trace_id not in known]
    (root,) = roots
    assert root.parent_span_id == ""
    spans = receiver.wait_for_trace(root.trace_id, {"dispatch", "generate"})
    dispatch = next(s for s in spans if s.name == "dispatch")
    assert next(s for s in spans if s.name == "generate").parent_span_id == dispatch.span_id


def test_with_tracing_off_nothing_is_exported(redis_server: RedisServer, tmp_path: Path) -> None:
    with OtlpReceiver() as receiver:
        # Redis database 1: this cluster's registry, apart from the traced one's.
        url = redis_server.url.rsplit("/", 1)[0] + "/1"
        cluster = start_cluster(url, tracing_env(receiver, enabled=False), tmp_path)
        try:
            headers = {"traceparent": f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"}
            for stream in (False, True):
                chat(cluster.router, stream=stream, headers=headers)
            time.sleep(1.0)  # ten export intervals
        finally:
            cluster.router.stop()
            cluster.replica.stop()
        assert receiver.exports == [] and receiver.spans == []
