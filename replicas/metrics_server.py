"""The replica's Prometheus endpoint: ``GET /metrics`` on the metrics port.

It serves the process's default registry, which holds the replica-level
``fleetgate_replica_*`` metrics and, for vLLM replicas, vLLM's own ``vllm:``
engine metrics: vLLM V1's ``AsyncLLM`` registers its ``PrometheusStatLogger``
in the default registry of the process that runs it (ours), fed by the engine
core's stats. vLLM switches to prometheus multiprocess mode only when
``PROMETHEUS_MULTIPROC_DIR`` is set (its own server does so for several API
processes); then, as vLLM does, the metrics are collected from that directory.

Every series served carries the replica's ``replica`` (its id) and ``model``
labels: the ``fleetgate_replica_*`` ones have them already, and the rest (vLLM's,
which name only ``model_name`` and ``engine``, and the process metrics) get them
here. So dashboards split every panel per replica however Prometheus finds the
replica (file SD locally, a PodMonitor on Kubernetes) and need no relabelling.
"""

from __future__ import annotations

import copy
import os
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, CollectorRegistry, Metric, multiprocess, start_http_server

from fleetgate.replicas.ports import bind_first_free


def metrics_registry() -> CollectorRegistry:
    """The registry to expose: the default one, or the multiprocess collector when vLLM runs in that mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


class LabelledCollector:
    """The metrics of ``source`` with ``labels`` added to every sample that does not carry them itself."""

    def __init__(self, source: CollectorRegistry, labels: Mapping[str, str]) -> None:
        self._source = source
        self._labels = dict(labels)

    def collect(self) -> Iterator[Metric]:
        for family in self._source.collect():
            labelled = copy.copy(family)
            labelled.samples = [sample._replace(labels={**self._labels, **sample.labels}) for sample in family.samples]
            yield labelled


def labelled_registry(labels: Mapping[str, str]) -> CollectorRegistry:
    """The registry to expose (``metrics_registry``), every sample carrying ``labels`` (its own labels win)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LabelledCollector(metrics_registry(), labels))
    return registry


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


def start_metrics_server(
    host: str = "127.0.0.1", port: int = 0, *, labels: Mapping[str, str], port_search_span: int = 1
) -> MetricsServer:
    """Serve ``/metrics`` on ``host:port`` (0 picks a free port) from a daemon thread, every sample carrying ``labels``.

    With ``port_search_span`` above 1, ``port`` is a base: the first free port of
    that many from it is taken (``replicas/ports.py``).
    """
    registry = labelled_registry(labels)
    httpd, thread = bind_first_free(
        lambda candidate: start_http_server(candidate, addr=host, registry=registry), host, port, port_search_span
    )
    return MetricsServer(httpd=httpd, thread=thread, host=host, port=httpd.server_port)
