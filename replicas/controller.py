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

The elastic fleet (models with a ``scaling`` section, and load / unload requests for any model): every
``SCALE_SECONDS`` the controller reads each model's signals from Redis (``replicas/scaling_io.py``: the routers'
demand, the replicas' load, load / unload requests, request-set TTLs), asks the pure ``replicas/scaling.py`` for
the desired counts and applies them: new slots are launched (when a replica does not fit in Ray's free
resources, the least recently used evictable model gives up one first), surplus ones drained (withdrawn from
the registry, in-flight requests finished for up to ``DRAIN_GRACE_SECONDS``, then the actor and its placement
group released) and dropped. It publishes each model's state (desired / starting / up / draining) for routers.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from dataclasses import dataclass, replace
from typing import Any

import ray
import redis
from ray.exceptions import RayActorError, RayError

from fleetgate.core.config import FleetgateConfig, ModelConfig, load_config
from fleetgate.core.demand import ModelState
from fleetgate.replicas.main import DRAIN_GRACE_SECONDS, RunningReplica, new_replica_id, start_replica
from fleetgate.replicas.placement import actor_options, placed_model, replica_placement, replica_resources
from fleetgate.replicas.scaling import (
    EvictionCandidate,
    Memory,
    Signals,
    decide,
    fits,
    initial_replicas,
    pick_eviction,
)
from fleetgate.replicas.scaling_io import done_loading, forget_ttl, read_signals, write_states

log = logging.getLogger(__name__)

SUPERVISE_SECONDS = 2.0
PING_TIMEOUT_SECONDS = 10.0
# A replica that misses this many pings in a row is replaced.
MAX_MISSED_PINGS = 3
RESTART_BACKOFF_MAX_SECONDS = 60.0
# How often the elastic fleet's desired counts are recomputed.
SCALE_SECONDS = 1.0
# A draining replica stays registered as draining this long before it stops accepting calls, so every router
# has re-read the registry (router.registry_refresh_seconds) and sends it nothing new.
DRAIN_SETTLE_SECONDS = 1.5


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

    async def drain(self, grace: float = DRAIN_GRACE_SECONDS, settle: float = 0.0) -> None:
        if self.replica is not None:
            replica, self.replica = self.replica, None
            await replica.drain(grace, settle=settle)


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
    # Set while the slot drains (scaled down or unloaded): the actor's drain call; the slot goes when it ends.
    drain_ref: Any | None = None

    @property
    def name(self) -> str:
        return f"{self.model.name}[{self.index}]"

    @property
    def draining(self) -> bool:
        return self.drain_ref is not None


def replica_slots(config: FleetgateConfig) -> list[ReplicaSlot]:
    """Every replica started at launch: ``replicas`` positions per model (within its scaling bounds), in config
    order."""
    return [ReplicaSlot(model, index) for model in config.models for index in range(initial_replicas(model))]


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
        # The elastic fleet: Redis (routers' demand, load requests), each model's memory, the next tick.
        self._redis: redis.Redis | None = None
        self._memory: dict[str, Memory] = {}
        self._next_scale_at = 0.0
        self._next_index = {m.name: initial_replicas(m) for m in config.models}
        # model -> (unix time, why) of its last replica start that failed, until one starts.
        self._load_errors: dict[str, tuple[float, str]] = {}

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
            drains = [slot.drain_ref for slot in self.slots if slot.drain_ref is not None]
            drains += [slot.actor.drain.remote(grace) for slot in self.slots
                       if slot.actor is not None and slot.drain_ref is None]
            if drains:
                ready, _ = ray.wait(drains, num_returns=len(drains), timeout=grace + 10)
                for ref in ready:
                    _log_failure(ref, "drain")
            for slot in self.slots:
                self._release(slot, remove_group=True)
        if self._redis is not None:
            self._redis.close()
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
                pending = [slot.name for slot in self.slots if slot.record is None and not slot.draining]
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
            self._load_errors[slot.model.name] = (time.time(), _cause(exc))
            self._schedule_restart(slot)
            return
        slot.failures = 0
        self._load_errors.pop(slot.model.name, None)
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
            starting = any(slot.start_ref is not None or slot.actor is None or slot.draining for slot in self.slots)
        return 0.2 if starting or self._elastic else SUPERVISE_SECONDS

    @property
    def _elastic(self) -> bool:
        """Some model scales (ticks then come every SCALE_SECONDS, not every SUPERVISE_SECONDS)."""
        return any(m.scaling is not None for m in self.config.models)

    def supervise_once(self) -> None:
        """Finish pending starts and drains, relaunch replicas whose backoff is over, ping the rest, replace dead
        ones; then, every ``SCALE_SECONDS``, scale."""
        with self._lock:
            for slot in [s for s in self.slots if s.draining]:
                self._check_drain(slot)
            for slot in self.slots:
                if slot.draining:
                    continue
                if slot.actor is None and time.monotonic() >= slot.next_attempt_at and not self._stop.is_set():
                    self._launch(slot)
                elif slot.start_ref is not None:
                    self._check_start(slot)
            # A slot with a record has an actor (both are set by a start and cleared by _release).
            pings = {
                slot.actor.ping.remote(): (slot, slot.replica_id)
                for slot in self.slots
                if slot.record is not None and slot.actor is not None and not slot.draining
            }
        if pings:
            answered, _ = ray.wait(list(pings), num_returns=len(pings), timeout=PING_TIMEOUT_SECONDS)
            with self._lock:
                for ref, (slot, replica_id) in pings.items():
                    if (slot.replica_id == replica_id and slot.record is not None and not slot.draining
                            and not self._stop.is_set()):
                        self._judge_ping(slot, ref if ref in answered else None)
        if time.monotonic() >= self._next_scale_at and not self._stop.is_set():
            self._next_scale_at = time.monotonic() + SCALE_SECONDS
            self.scale_once()

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

    # -- scaling (the elastic fleet) ------------------------------------------------------

    def scale_once(self) -> None:
        """One scaling tick: read the signals, decide every model's count, launch or drain to it, publish."""
        if self._redis is None:
            self._redis = redis.Redis.from_url(self.config.redis_url, socket_timeout=5.0)
        try:
            signals = read_signals(self._redis, [m.name for m in self.config.models])
        except (redis.RedisError, OSError) as exc:
            log.warning("scaling skipped, Redis unreadable: %s", exc)
            return
        now = time.time()
        with self._lock:
            desired: dict[str, int] = {}
            for model in self.config.models:
                model_signals = replace(signals[model.name], current=len(self._live(model.name)))
                memory = self._memory.setdefault(model.name, Memory(last_active_at=now))
                decision = decide(model, model_signals, memory, now)
                self._memory[model.name] = decision.memory
                desired[model.name] = decision.desired
                if decision.went_idle:
                    forget_ttl(self._redis, model.name)
                    log.info("model %s idle: scaling to %d", model.name, decision.desired)
            for model in self.config.models:
                self._scale_to(model, desired[model.name], signals)
            states = [self._state(model, desired[model.name]) for model in self.config.models]
        for state in states:
            if state.up > 0 and signals[state.model].load_requested:
                done_loading(self._redis, state.model)
        write_states(self._redis, states)

    def _live(self, model: str) -> list[ReplicaSlot]:
        """The model's slots that are starting or up (not draining)."""
        return [s for s in self.slots if s.model.name == model and not s.draining]

    def _state(self, model: ModelConfig, desired: int) -> ModelState:
        slots = [s for s in self.slots if s.model.name == model.name]
        up = sum(1 for s in slots if s.record is not None and not s.draining)
        draining = sum(1 for s in slots if s.draining)
        failed_at, error = self._load_errors.get(model.name, (0.0, ""))
        return ModelState(model=model.name, desired=desired, up=up, draining=draining,
                          starting=len(slots) - up - draining, load_error=error, load_error_at=failed_at)

    def _scale_to(self, model: ModelConfig, desired: int, signals: dict[str, Signals]) -> None:
        live = self._live(model.name)
        for _ in range(desired - len(live)):
            self._make_room(model, signals)
            slot = ReplicaSlot(model, self._next_index[model.name])
            self._next_index[model.name] += 1
            self.slots.append(slot)
            self._launch(slot)
        if len(live) > desired:
            # Not yet up first (nothing to drain), then the least loaded.
            order = sorted(live, key=lambda s: (s.record is not None, _load_of(s)))
            for slot in order[: len(live) - desired]:
                self._drain(slot)

    def _make_room(self, model: ModelConfig, signals: dict[str, Signals]) -> None:
        """When a replica of ``model`` does not fit in Ray's free resources, drain one replica of the least
        recently used evictable model (``scaling.evictable``) that nobody is using."""
        need = replica_resources(model)
        if fits(need, ray.available_resources()):
            return
        candidates = [
            EvictionCandidate(m.name, len(self._live(m.name)), m.scaling.min_replicas, m.scaling.evictable,
                              max(signals[m.name].last_request_at, self._memory[m.name].last_active_at),
                              signals[m.name].router_requests + signals[m.name].loading)
            for m in self.config.models if m.scaling is not None
        ]
        victim = pick_eviction(model.name, candidates)
        if victim is None:
            log.info("replica of %s does not fit now; Ray schedules it when resources free up", model.name)
            return
        slot = min(self._live(victim), key=_load_of)
        log.info("evicting %s (least recently used) to make room for %s", slot.name, model.name)
        self._drain(slot)

    def _drain(self, slot: ReplicaSlot) -> None:
        """Start draining ``slot`` (a slot not started yet is released at once)."""
        if slot.actor is None or slot.record is None:
            self._release(slot, remove_group=True)
            self.slots.remove(slot)
            return
        log.info("draining replica %s (%s)", slot.name, slot.replica_id)
        slot.drain_ref = slot.actor.drain.remote(DRAIN_GRACE_SECONDS, DRAIN_SETTLE_SECONDS)

    def _check_drain(self, slot: ReplicaSlot) -> None:
        ready, _ = ray.wait([slot.drain_ref], timeout=0)
        if not ready:
            return
        _log_failure(slot.drain_ref, f"drain of {slot.name}")
        slot.drain_ref = None
        self._release(slot, remove_group=True)
        self.slots.remove(slot)
        log.info("replica %s drained and stopped", slot.name)

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


def _cause(exc: RayError) -> str:
    """The last line of a failed start's error (the replica's own exception), cut to 300 characters."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[-1] if lines else type(exc).__name__)[:300]


def _load_of(slot: ReplicaSlot) -> int:
    load = (slot.record or {}).get("load") or {}
    return int(load.get("running", 0)) + int(load.get("waiting", 0))


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
