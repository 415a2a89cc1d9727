"""Replicas as Ray actors: the actor that hosts one replica, and the controller that keeps them running.

``ReplicaActor`` runs a whole replica (engine, gRPC server on the node's IP or ``replica.actor_host``,
metrics, registry heartbeat) inside a Ray actor, on the first free ports at or
above the configured base ports of its own node; its resources, placement group
and environment (the model's ``env``, e.g. ``VLLM_CPU_KVCACHE_SPACE``, through
``runtime_env``) come from ``replicas/placement.py``.

``ReplicaController`` starts the configured number of replicas per model,
replaces any that die (a fresh actor with a new replica id, in the same
placement group) and drains them all on shutdown. ``fleetgate controller`` runs
it until SIGTERM; ``fleetgate up`` embeds it.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any

import ray
from ray.exceptions import RayActorError, RayError

from fleetgate.core.config import FleetgateConfig, ModelConfig, load_config
from fleetgate.replicas.main import DRAIN_GRACE_SECONDS, RunningReplica, new_replica_id, start_replica
from fleetgate.replicas.placement import actor_options, placed_model, replica_placement

log = logging.getLogger(__name__)

SUPERVISE_SECONDS = 2.0
PING_TIMEOUT_SECONDS = 10.0
# A replica that misses this many pings in a row is replaced.
MAX_MISSED_PINGS = 3
RESTART_BACKOFF_MAX_SECONDS = 60.0


def with_model(config: FleetgateConfig, model: ModelConfig) -> FleetgateConfig:
    """``config`` with ``model`` replacing the model of the same name."""
    return config.model_copy(update={"models": [model if m.name == model.name else m for m in config.models]})


@ray.remote(max_restarts=0)
class ReplicaActor:
    """One replica inside a Ray actor, serving on the node's IP address."""

    def __init__(self, config: FleetgateConfig, model_name: str, replica_id: str) -> None:
        self.config = with_model(config, placed_model(config.model(model_name)))
        self.model_name = model_name
        self.replica_id = replica_id
        self.replica: RunningReplica | None = None

    async def start(self) -> dict[str, Any]:
        """Start the replica on the node's IP (or ``replica.actor_host``) and register it; returns its record.

        Its gRPC and metrics ports are the first free ones at or above
        ``replica.base_port`` / ``replica.metrics_base_port`` on this node (0: any free
        port), so one replica per Kubernetes pod always serves on the base ports.
        """
        ports = self.config.replica
        host = ports.actor_host or ray.util.get_node_ip_address()
        self.replica = await start_replica(
            self.config, self.model_name, replica_id=self.replica_id, host=host,
            port=ports.base_port, metrics_port=ports.metrics_base_port, find_free_ports=True, advertise_host=host,
        )
        return self.replica.record.model_dump()

    async def ping(self) -> bool:
        if self.replica is None:
            return False
        healthy, _ = await self.replica.engine.healthy()
        return healthy

    async def drain(self, grace: float = DRAIN_GRACE_SECONDS) -> None:
        if self.replica is not None:
            replica, self.replica = self.replica, None
            await replica.drain(grace)


@dataclass
class ReplicaSlot:
    """One configured replica position (model, index) and the actor currently filling it."""

    model: ModelConfig
    index: int
    placement_group: Any | None = None
    actor: Any | None = None
    replica_id: str = ""
    start_ref: Any | None = None
    record: dict[str, Any] | None = None
    missed_pings: int = 0
    failures: int = 0
    next_attempt_at: float = 0.0

    @property
    def name(self) -> str:
        return f"{self.model.name}[{self.index}]"


def replica_slots(config: FleetgateConfig) -> list[ReplicaSlot]:
    """Every configured replica: ``replicas`` positions per model, in config order."""
    return [ReplicaSlot(model, index) for model in config.models for index in range(model.replicas)]


class ReplicaController:
    """Starts, supervises and drains the configured replicas as Ray actors."""

    def __init__(self, config: FleetgateConfig, ray_address: str | None = None) -> None:
        self.config = config
        self.ray_address = ray_address if ray_address is not None else config.ray.address
        self.slots = replica_slots(config)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._supervisor: threading.Thread | None = None
        self._owns_ray = False

    # -- lifecycle -------------------------------------------------------------------

    def start(self, timeout: float = 900.0, cancel: threading.Event | None = None) -> bool:
        """Launch every replica and wait until all are registered (True), or until ``timeout``
        passes or ``cancel`` is set (False). Supervision (finishing starts, replacing dead
        replicas) runs in a background thread from here on.
        """
        self.connect()
        with self._lock:
            for slot in self.slots:
                self._launch(slot)
        self._supervisor = threading.Thread(target=self._supervise_forever, name="replica-supervisor", daemon=True)
        self._supervisor.start()
        return self._wait_started(timeout, cancel or threading.Event())

    def connect(self) -> None:
        """Join Ray (``ray_address``; None starts a local Ray) unless this process already has."""
        if not ray.is_initialized():
            ray.init(address=self.ray_address, namespace=self.config.ray.namespace, include_dashboard=False)
            self._owns_ray = True

    def stop(self, grace: float = DRAIN_GRACE_SECONDS) -> None:
        """Drain every replica (withdraw, finish in-flight for ``grace`` s), then release actors and groups."""
        self._stop.set()
        if self._supervisor is not None:
            self._supervisor.join(timeout=PING_TIMEOUT_SECONDS + SUPERVISE_SECONDS)
        with self._lock:
            actors = [slot.actor for slot in self.slots if slot.actor is not None]
            drains = [actor.drain.remote(grace) for actor in actors]
            if drains:
                ready, _ = ray.wait(drains, num_returns=len(drains), timeout=grace + 10)
                for ref in ready:
                    _log_failure(ref, "drain")
            for slot in self.slots:
                self._release(slot, remove_group=True)
        if self._owns_ray:
            ray.shutdown()

    def records(self) -> list[dict[str, Any]]:
        """Registry records of the replicas that are up."""
        with self._lock:
            return [slot.record for slot in self.slots if slot.record is not None]

    # -- launching -------------------------------------------------------------------

    def _launch(self, slot: ReplicaSlot) -> None:
        placement = replica_placement(slot.model)
        if placement.uses_placement_group and slot.placement_group is None:
            slot.placement_group = ray.util.placement_group(
                placement.bundles, strategy=placement.strategy, name=f"fleetgate-{slot.model.name}-{slot.index}"
            )
        slot.replica_id = new_replica_id(slot.model.name)
        slot.actor = ReplicaActor.options(  # type: ignore[attr-defined]  # @ray.remote made it an actor class
            name=f"replica-{slot.replica_id}", **actor_options(slot.model, slot.placement_group)
        ).remote(self.config, slot.model.name, slot.replica_id)
        slot.start_ref = slot.actor.start.remote()
        slot.record = None
        slot.missed_pings = 0
        log.info("starting replica %s as %s", slot.name, slot.replica_id)

    def _wait_started(self, timeout: float, cancel: threading.Event) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                pending = [slot.name for slot in self.slots if slot.record is None]
            if not pending:
                return True
            if time.monotonic() > deadline or cancel.wait(0.2):
                log.warning("replicas not up: %s", ", ".join(pending))
                return False

    def _check_start(self, slot: ReplicaSlot) -> None:
        if slot.start_ref is None:
            return
        ready, _ = ray.wait([slot.start_ref], timeout=0)
        if not ready:
            return
        ref, slot.start_ref = slot.start_ref, None
        try:
            slot.record = ray.get(ref)
        except RayError as exc:
            log.error("replica %s (%s) failed to start: %s", slot.name, slot.replica_id, exc)
            self._schedule_restart(slot)
            return
        slot.failures = 0
        log.info("replica %s up: %s at %s", slot.name, slot.replica_id, slot.record["address"])

    # -- supervision -----------------------------------------------------------------

    def _supervise_forever(self) -> None:
        while True:
            try:
                self.supervise_once()
            except Exception:  # the supervisor must outlive any one bad check
                log.exception("replica supervision failed")
            if self._stop.wait(self._supervise_interval()):
                return

    def _supervise_interval(self) -> float:
        """Quick while replicas are starting, ``SUPERVISE_SECONDS`` once all are up."""
        with self._lock:
            starting = any(slot.start_ref is not None or slot.actor is None for slot in self.slots)
        return 0.2 if starting else SUPERVISE_SECONDS

    def supervise_once(self) -> None:
        """Finish pending starts, relaunch replicas whose backoff is over, ping the rest, replace dead ones."""
        with self._lock:
            for slot in self.slots:
                if slot.actor is None and time.monotonic() >= slot.next_attempt_at and not self._stop.is_set():
                    self._launch(slot)
                elif slot.start_ref is not None:
                    self._check_start(slot)
            # A slot with a record has an actor (both are set by a start and cleared by _release).
            pings = {
                slot.actor.ping.remote(): (slot, slot.replica_id)
                for slot in self.slots
                if slot.record is not None and slot.actor is not None
            }
        if not pings:
            return
        answered, _ = ray.wait(list(pings), num_returns=len(pings), timeout=PING_TIMEOUT_SECONDS)
        with self._lock:
            for ref, (slot, replica_id) in pings.items():
                if slot.replica_id == replica_id and slot.record is not None and not self._stop.is_set():
                    self._judge_ping(slot, ref if ref in answered else None)

    def _judge_ping(self, slot: ReplicaSlot, answer: Any | None) -> None:
        healthy = False
        if answer is not None:
            try:
                healthy = ray.get(answer)
            except RayActorError as exc:
                log.warning("replica %s (%s) died: %s", slot.name, slot.replica_id, type(exc).__name__)
                self._schedule_restart(slot)
                return
            except RayError as exc:
                log.warning("replica %s (%s) health check failed: %s", slot.name, slot.replica_id, exc)
        slot.missed_pings = 0 if healthy else slot.missed_pings + 1
        if slot.missed_pings >= MAX_MISSED_PINGS:
            log.warning("replica %s (%s) unresponsive or unhealthy; replacing it", slot.name, slot.replica_id)
            self._schedule_restart(slot)

    def _schedule_restart(self, slot: ReplicaSlot) -> None:
        self._release(slot, remove_group=False)
        slot.failures += 1
        delay = min(RESTART_BACKOFF_MAX_SECONDS, 2.0 ** (slot.failures - 1)) if slot.failures > 1 else 0.0
        slot.next_attempt_at = time.monotonic() + delay

    def _release(self, slot: ReplicaSlot, *, remove_group: bool) -> None:
        if slot.actor is not None:
            try:
                ray.kill(slot.actor, no_restart=True)
            except RayError:
                pass
        slot.actor, slot.start_ref, slot.record = None, None, None
        if remove_group and slot.placement_group is not None:
            ray.util.remove_placement_group(slot.placement_group)
            slot.placement_group = None


def _log_failure(ref: Any, what: str) -> None:
    try:
        ray.get(ref)
    except RayError as exc:
        log.warning("%s failed: %s", what, exc)


def install_stop_signals(stop: threading.Event) -> None:
    """SIGTERM / SIGINT set ``stop``. Call it after ``ray.init``, which installs its own SIGTERM handler."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())


def run_controller(args: argparse.Namespace) -> int:
    """``fleetgate controller``: join a Ray cluster and keep the configured replicas running until SIGTERM."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = load_config(args.config)
    controller = ReplicaController(config, ray_address=args.ray_address)
    controller.connect()
    stop = threading.Event()
    install_stop_signals(stop)
    controller.start(cancel=stop)
    for record in controller.records():
        log.info("serving %s: %s at %s", record["model"], record["replica_id"], record["address"])
    stop.wait()
    controller.stop()
    return 0
