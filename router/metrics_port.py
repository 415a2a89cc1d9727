"""``/metrics`` on a port of its own (``router.metrics_port``, bound to ``router.metrics_host``).

Prometheus then scrapes an address the API's clients never see (loopback or a
cluster-internal interface), and the API port answers ``/metrics`` with 404. The
server is prometheus_client's own, in a thread, serving the router's registry.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from prometheus_client import start_http_server

from fleetgate.core.config import RouterConfig
from fleetgate.router import metrics


@contextlib.contextmanager
def serve_metrics(settings: RouterConfig) -> Iterator[None]:
    """Serve the router's metrics on ``settings.metrics_port`` while the block runs (nothing when it is None)."""
    if settings.metrics_port is None:
        yield
        return
    server, thread = start_http_server(settings.metrics_port, addr=settings.metrics_host, registry=metrics.REGISTRY)
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
