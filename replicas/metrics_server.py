"""The replica's Prometheus endpoint: ``GET /metrics`` on the metrics port.

It serves the process's default registry, which holds the replica-level
``fleetgate_replica_*`` metrics and, for vLLM replicas, vLLM's own ``vllm:``
engine metrics: vLLM V1's ``AsyncLLM`` registers its ``PrometheusStatLogger``
in the default registry of the process that runs it (ours), fed by the engine
core's stats. vLLM switches to prometheus multiprocess mode only when
``PROMETHEUS_MULTIPROC_DIR`` is set (its own server does so for several API
processes); then, as vLLM does, the metrics are collected from that directory.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, CollectorRegistry, multiprocess, start_http_server


def metrics_registry() -> CollectorRegistry:
    """The registry to expose: the default one, or the multiprocess collector when vLLM runs in that mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


@dataclass
class MetricsServer:
    httpd: WSGIServer
    thread: threading.Thread
    host: str
    port: int

    def url(self, advertise_host: str | None = None) -> str:
        return f"http://{advertise_host or self.host}:{self.port}/metrics"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def start_metrics_server(host: str = "127.0.0.1", port: int = 0) -> MetricsServer:
    """Serve ``/metrics`` on ``host:port`` (0 picks a free port) from a daemon thread."""
    httpd, thread = start_http_server(port, addr=host, registry=metrics_registry())
    return MetricsServer(httpd=httpd, thread=thread, host=host, port=httpd.server_port)
