"""One replica as a running service: engine, gRPC server, metrics endpoint, registry heartbeat, prefix index.

``start_replica`` brings the parts up in order and ``RunningReplica.drain``
takes them down in the reverse order (withdraw from the registry first, so
routers stop sending, then let in-flight calls finish for a grace period and
abort the rest; the spans still queued are exported last, with tracing on:
``replicas/tracing.py``). ``serve_replica`` runs a replica until a stop event; the plain
process (``fleetgate replica``, via ``run_replica``) and the Ray actor
(``replicas/controller.py``) both use these.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fleetgate.core.config import FleetgateConfig, load_config
from fleetgate.core.kv_index import kv_ttl_seconds
from fleetgate.core.registered import Heartbeat
from fleetgate.core.registry import ReplicaRecord
from fleetgate.replicas.engine_factory import build_engine
from fleetgate.replicas.engine_interface import Engine
from fleetgate.replicas.kv_index.publisher import KvIndexPublisher
from fleetgate.replicas.metrics_server import MetricsServer, start_metrics_server
from fleetgate.replicas.ports import PORT_SEARCH_SPAN
from fleetgate.replicas.server import ReplicaServer, start_replica_server
from fleetgate.replicas.tracing import ReplicaTracing

log = logging.getLogger(__name__)

# In-flight requests get this long to finish when a replica drains; the rest are aborted.
DRAIN_GRACE_SECONDS = 20.0
_WILDCARD_HOSTS = {"", "0.0.0.0", "::"}


def new_replica_id(model_name: str) -> str:
    return f"{model_name}-{uuid.uuid4().hex[:8]}"


def reachable_host(host: str) -> str:
    """The address other machines use for a server bound to ``host`` (resolves wildcards)."""
    if host not in _WILDCARD_HOSTS:
        return host
    with contextlib.suppress(OSError):
        return socket.gethostbyname(socket.gethostname())
    return "127.0.0.1"


@dataclass
class RunningReplica:
    engine: Engine
    server: ReplicaServer
    metrics: MetricsServer
    heartbeat: Heartbeat[ReplicaRecord]
    kv_index: KvIndexPublisher | None = None
    tracing: ReplicaTracing | None = None

    @property
    def record(self) -> ReplicaRecord:
        return self.heartbeat.record

    async def drain(self, grace: float = DRAIN_GRACE_SECONDS, *, settle: float = 0.0) -> None:
        """Withdraw from the registry, wait ``settle`` s (routers re-read the registry and stop sending calls),
        stop accepting, finish or abort in-flight calls (``grace`` s), release the engine."""
        log.info("replica %s draining (%d in flight)", self.record.replica_id, self.server.servicer.in_flight)
        await self.heartbeat.withdraw()
        self.record.draining = True
        if settle > 0:
            await asyncio.sleep(settle)
        await self.server.stop(grace)
        await self.engine.stop()
        if self.kv_index is not None:
            await self.kv_index.stop()
        self.metrics.stop()
        if self.tracing is not None:
            await asyncio.to_thread(self.tracing.shutdown)
        log.info("replica %s stopped", self.record.replica_id)


async def start_replica(
    config: FleetgateConfig,
    model_name: str,
    *,
    replica_id: str,
    host: str,
    port: int = 0,
    metrics_port: int = 0,
    find_free_ports: bool = False,
    advertise_host: str | None = None,
) -> RunningReplica:
    """Start the engine, then serve it and register it; undo what was started if a step fails.

    ``port`` / ``metrics_port`` are taken as they are (0: any free port), or with
    ``find_free_ports`` as bases: the first free port at or above each, on this
    node (``replicas/ports.py``). The record registers the ports actually bound.
    """
    model = config.model(model_name)
    span = PORT_SEARCH_SPAN if find_free_ports else 1
    advertised = advertise_host or reachable_host(host)
    kv_index = None
    if config.replica.kv_index:
        kv_index = KvIndexPublisher(
            config.redis_url,
            replica_id,
            ttl_seconds=kv_ttl_seconds(config.replica.registry_ttl_seconds),
            resync_seconds=config.replica.kv_index_resync_seconds,
        )
    # vLLM's own tracing is on when the replica's is and tracing.engine_spans says so.
    engine_tracing = config.tracing if config.tracing.enabled and config.tracing.engine_spans else None
    engine = build_engine(model, replica_id, kv_index, tracing=engine_tracing)
    tracing = ReplicaTracing.from_config(config.tracing, replica_id=replica_id, engine=model.engine)
    async with contextlib.AsyncExitStack() as undo:
        if kv_index is not None:
            await kv_index.start()
            undo.push_async_callback(kv_index.stop)
        undo.push_async_callback(engine.stop)
        await engine.start()
        server = await start_replica_server(
            engine, replica_id=replica_id, model_name=model.name, host=host, port=port, port_search_span=span,
            advertise_host=advertised, auth_token=config.replica.auth_token, tracing=tracing,
        )
        undo.push_async_callback(server.stop, 0)
        metrics = start_metrics_server(
            host, metrics_port, labels={"replica": replica_id, "model": model.name}, port_search_span=span
        )
        undo.callback(metrics.stop)
        record = ReplicaRecord(
            replica_id=replica_id,
            model=model.name,
            engine=engine.kind,
            address=server.address,
            metrics_url=metrics.url(advertised),
            max_context_length=engine.max_context_length,
            max_num_seqs=engine.max_num_seqs,
            capabilities=engine.capabilities,
            pid=os.getpid(),
        )
        async def refresh_load() -> None:
            record.load = server.servicer.current_load()

        heartbeat = Heartbeat(
            config.redis_url,
            record,
            interval=config.replica.heartbeat_seconds,
            ttl=config.replica.registry_ttl_seconds,
            refresh=refresh_load,
        )
        await heartbeat.start()
        undo.pop_all()
    log.info("replica %s serving %s on %s, metrics %s", replica_id, model.name, server.address, record.metrics_url)
    return RunningReplica(engine=engine, server=server, metrics=metrics, heartbeat=heartbeat, kv_index=kv_index,
                          tracing=tracing)


async def serve_replica(
    config: FleetgateConfig,
    model_name: str,
    *,
    replica_id: str,
    host: str,
    port: int,
    metrics_port: int,
    stop_event: asyncio.Event,
    advertise_host: str | None = None,
    drain_grace: float = DRAIN_GRACE_SECONDS,
) -> None:
    """Run one replica until ``stop_event`` is set, then drain it. A stop during startup abandons the start."""
    starting = asyncio.create_task(
        start_replica(
            config, model_name, replica_id=replica_id, host=host, port=port,
            metrics_port=metrics_port, advertise_host=advertise_host,
        )
    )
    stopping = asyncio.create_task(stop_event.wait())
    await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if not starting.done():
        starting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await starting
        return
    replica = starting.result()
    try:
        await stopping
    finally:
        await replica.drain(drain_grace)


def run_replica(args: argparse.Namespace) -> int:
    """``fleetgate replica``: one replica as a plain process (no Ray) until SIGTERM / SIGINT."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = load_config(args.config)
    try:
        model = config.model(args.model)
    except KeyError:
        log.error(
            "model %r is not in the config (configured: %s)", args.model, ", ".join(m.name for m in config.models)
        )
        return 2
    os.environ.update(model.env)
    replica_id = args.replica_id or new_replica_id(model.name)
    host = args.host or config.replica.host
    port = args.port if args.port is not None else 0
    metrics_port = args.metrics_port if args.metrics_port is not None else 0

    def serve(stop_event: asyncio.Event) -> Awaitable[None]:
        return serve_replica(
            config,
            model.name,
            replica_id=replica_id,
            host=host,
            port=port,
            metrics_port=metrics_port,
            stop_event=stop_event,
        )

    return asyncio.run(run_until_signalled(serve))


async def run_until_signalled(serve: Callable[[asyncio.Event], Awaitable[None]]) -> int:
    """Run ``serve(stop_event)``; SIGTERM / SIGINT set the event. Returns the process exit code."""
    stop_event = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop_event.set)
    await serve(stop_event)
    return 0
