"""``fleetgate up``: the whole cluster on one machine, in the foreground.

In order: prepare bundled models (once), start ``redis-server`` with AOF
persistence in ``redis.data_dir`` (unless ``redis.url`` points at a Redis
already), start a local Ray (limited CPUs, no dashboard) or join
``ray.address``, start the configured replicas as Ray actors
(``ReplicaController``), with ``tools.enabled`` start ``tools.toolboxes`` toolbox
processes (``fleetgate toolbox``, ports ``tools.base_port`` + n), start the router (``fleetgate router``) as a
subprocess, and with ``--with-prometheus`` a local Prometheus
(``fleetgate.launcher.local_prometheus``) on ``--prometheus-port`` (default 9090; its
files in ``~/.cache/fleetgate/prometheus/<port>``). Ctrl-C or SIGTERM stops everything in the
reverse order: the router, the toolboxes, the replicas (drained), Ray, then Redis, leaving no
process behind.

The surface stays on this machine: Redis, the replica actors' gRPC and metrics
servers (``replica.actor_host``) and Ray's dashboard host are 127.0.0.1. Ray's own
processes (GCS, raylet, workers) listen on the node's address whatever ray.init is
told (it turns 127.0.0.1 into the node's IP), behind Ray's token authentication. And
unless ``replica.auth_token`` is set, a token is drawn per run and handed to the
replicas (in their config) and the router (``FLEETGATE_REPLICA__AUTH_TOKEN``), so
replicas serve only the router.

Redis, the toolboxes and the router run in their own sessions so that Ctrl-C in the terminal
reaches only this process, which then stops them in the right order. All are
supervised (``fleetgate.core.local_processes.SupervisedProcess``): when one dies,
it is started again (Redis on its port and data directory, so with its AOF) and
stderr says so; past ``MAX_RESTARTS`` restarts in ``RESTART_WINDOW_SECONDS``,
or when one cannot be started again, the cluster stops with exit code 1.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from fleetgate.core.config import DEFAULT_CONFIG, FleetgateConfig, load_config
from fleetgate.core.local_processes import RestartsExhausted, SupervisedProcess, port_open, wait_for_port
from fleetgate.core.replica_auth import REPLICA_TOKEN_ENV, new_replica_token

log = logging.getLogger(__name__)

# One directory per port, so that two local clusters never share their target files.
PROMETHEUS_WORK_DIR = "~/.cache/fleetgate/prometheus/{port}"
# Ray's object store is barely used (requests go over gRPC): keep it small.
RAY_OBJECT_STORE_BYTES = 256 * 1024**2
STOP_TIMEOUT_SECONDS = 15.0
REPLICA_START_TIMEOUT_SECONDS = 900.0
# Supervision of redis-server and the router: checked once a second, at most 3 restarts a minute each.
SUPERVISE_INTERVAL_SECONDS = 1.0
MAX_RESTARTS = 3
RESTART_WINDOW_SECONDS = 60.0
# Where the local cluster's replica actors bind their servers, and the local Ray's dashboard host.
LOOPBACK = "127.0.0.1"


@contextlib.contextmanager
def running_redis(config: FleetgateConfig, supervised: list[SupervisedProcess]) -> Iterator[str]:
    """The Redis URL to use: ``redis.url`` as is, or a redis-server started here with AOF persistence
    (added to ``supervised``: restarted on the same port and data, hence its AOF, when it dies)."""
    if config.redis.url:
        yield config.redis.url
        return
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (run `make setup`) and redis.url is not set")
    port = config.redis.port
    if port_open("127.0.0.1", port):
        raise RuntimeError(f"port {port} is taken (another redis-server?); stop it or set redis.url / redis.port")
    data_dir = Path(config.redis.data_dir).expanduser()
    data_dir.mkdir(parents=True, exist_ok=True)
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir), "--appendonly", "yes",
               "--protected-mode", "yes", "--logfile", str(data_dir / "redis.log")]
    redis = SupervisedProcess(
        "redis-server",
        lambda: subprocess.Popen(command, stdin=subprocess.DEVNULL, start_new_session=True),
        lambda process: wait_for_port(port, timeout=30, process=process, what="redis-server"),
        max_restarts=MAX_RESTARTS, window_seconds=RESTART_WINDOW_SECONDS,
    )
    supervised.append(redis)
    try:
        log.info("redis-server on port %d, data in %s", port, data_dir)
        yield config.redis_url
    finally:
        redis.stop(timeout=STOP_TIMEOUT_SECONDS)


@contextlib.contextmanager
def running_ray(config: FleetgateConfig) -> Iterator[None]:
    """A local Ray sized to the replicas (one CPU each, plus one), or the cluster at ``ray.address``."""
    import ray

    if config.ray.address:
        ray.init(address=config.ray.address, namespace=config.ray.namespace)
    else:
        replicas = sum(model.replicas for model in config.models)
        ray.init(
            num_cpus=replicas + 1, include_dashboard=False, dashboard_host=LOOPBACK, namespace=config.ray.namespace,
            object_store_memory=RAY_OBJECT_STORE_BYTES,
        )
    try:
        yield
    finally:
        ray.shutdown()


@contextlib.contextmanager
def running_replicas(config: FleetgateConfig, cancel: threading.Event) -> Iterator[None]:
    from fleetgate.replicas.controller import ReplicaController

    controller = ReplicaController(config)
    try:
        if not controller.start(timeout=REPLICA_START_TIMEOUT_SECONDS, cancel=cancel) and not cancel.is_set():
            log.warning("not every replica is up yet; the controller keeps trying")
        yield
    finally:
        controller.stop()


def supervised_child(
    name: str, arguments: list[str], host: str, port: int, redis_url: str, replica_token: str | None,
    extra_env: dict[str, str] | None = None,
) -> SupervisedProcess:
    """``fleetgate <arguments>`` as a supervised subprocess in its own session, on this run's Redis and replica
    token (and ``extra_env``), up when it listens on ``host:port``."""
    env = {**os.environ, **(extra_env or {}), "FLEETGATE_REDIS__URL": redis_url}
    if replica_token is not None:
        env[REPLICA_TOKEN_ENV] = replica_token
    command = [sys.executable, "-m", "fleetgate.launcher.cli", *arguments]
    return SupervisedProcess(
        name,
        lambda: subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, start_new_session=True),
        lambda process: wait_for_port(port, host=host, timeout=60, process=process, what=name),
        max_restarts=MAX_RESTARTS, window_seconds=RESTART_WINDOW_SECONDS,
    )


@contextlib.contextmanager
def running_router(
    config_path: Path, host: str, port: int, redis_url: str, replica_token: str | None,
    supervised: list[SupervisedProcess],
) -> Iterator[None]:
    """The router as a subprocess (added to ``supervised``: restarted when it dies)."""
    arguments = ["router", "--config", str(config_path), "--host", host, "--port", str(port)]
    router = supervised_child("router", arguments, host, port, redis_url, replica_token)
    supervised.append(router)
    try:
        yield
    finally:
        router.stop(timeout=STOP_TIMEOUT_SECONDS)


@contextlib.contextmanager
def running_toolboxes(
    config_path: Path, config: FleetgateConfig, redis_url: str, supervised: list[SupervisedProcess]
) -> Iterator[None]:
    """With ``tools.enabled``, ``tools.toolboxes`` toolbox processes on ``tools.base_port`` + n (ids
    ``local-toolbox-<n>``), each supervised like the router; none otherwise. Each one's sandboxes get a uid
    range of their own (``tools.sandbox.uid_base`` + n * (max_sessions + 1)): toolboxes on one host must never
    share a uid, since one kills every process of a uid it hands to a new session."""
    tools, sandbox = config.tools, config.tools.sandbox
    toolboxes: list[SupervisedProcess] = []
    try:
        for n in range(tools.toolboxes if tools.enabled else 0):
            port = tools.base_port + n
            if port_open(tools.host, port):
                raise RuntimeError(f"port {port} is taken (another toolbox?); stop it or set tools.base_port")
            arguments = ["toolbox", "--config", str(config_path), "--port", str(port),
                         "--toolbox-id", f"local-toolbox-{n}"]
            uid_base = {"FLEETGATE_TOOLS__SANDBOX__UID_BASE": str(sandbox.uid_base + n * (sandbox.max_sessions + 1))}
            toolboxes.append(supervised_child(
                f"toolbox {n}", arguments, tools.host, port, redis_url, config.replica.auth_token, uid_base
            ))
            supervised.append(toolboxes[-1])
        if toolboxes:
            log.info("%d toolbox(es) on %s:%d..", len(toolboxes), tools.host, tools.base_port)
        yield
    finally:
        for toolbox in reversed(toolboxes):
            toolbox.stop(timeout=STOP_TIMEOUT_SECONDS)


@contextlib.contextmanager
def running_prometheus(config: FleetgateConfig, router_address: str, port: int) -> Iterator[None]:
    """Prometheus on ``port`` through ``fleetgate.launcher.local_prometheus`` (owned by observability)."""
    from fleetgate.launcher.local_prometheus import start_prometheus

    if port_open("127.0.0.1", port):
        raise RuntimeError(f"port {port} is taken (another Prometheus?); choose another with --prometheus-port")
    work_dir = PROMETHEUS_WORK_DIR.format(port=port)
    handle = start_prometheus(config, work_dir=work_dir, port=port, extra_router_targets=[router_address])
    print(f"prometheus: {handle.url}  (targets: {handle.url}/targets)", flush=True)
    try:
        yield
    finally:
        handle.stop()


def prepare_bundled_models(config: FleetgateConfig) -> None:
    if any(model.model and model.model.startswith("bundled:") for model in config.models):
        from fleetgate.replicas.bundled_model import ensure_prepared

        ensure_prepared(config)


def closed_replicas(config: FleetgateConfig) -> FleetgateConfig:
    """``config`` with a replica token (the configured one, or one drawn for this run) and, on a local Ray,
    replica actors bound to loopback (unless ``replica.actor_host`` says otherwise)."""
    update: dict[str, str] = {}
    if config.replica.auth_token is None:
        update["auth_token"] = new_replica_token()
    if config.ray.address is None and config.replica.actor_host is None:
        update["actor_host"] = LOOPBACK
    return config.model_copy(update={"replica": config.replica.model_copy(update=update)})


def supervise(supervised: list[SupervisedProcess], stop: threading.Event) -> bool:
    """Restart the supervised children that die, once a second, until ``stop``; false (after saying why on
    stderr) when one cannot be kept running."""
    while not stop.wait(SUPERVISE_INTERVAL_SECONDS):
        try:
            for child in supervised:
                child.check()
        except RestartsExhausted as exc:
            print(f"fleetgate: {exc}; stopping the cluster", file=sys.stderr, flush=True)
            return False
    return True


def run_local_cluster(args: argparse.Namespace) -> int:
    """Run the local cluster until Ctrl-C / SIGTERM, restarting a dead Redis or router; exit 1 when one cannot
    be restarted (``MAX_RESTARTS`` within ``RESTART_WINDOW_SECONDS``)."""
    from fleetgate.replicas.controller import install_stop_signals  # imports Ray: only when the cluster runs

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config_path = Path(args.config) if args.config else DEFAULT_CONFIG
    config = closed_replicas(load_config(config_path))
    host = config.router.host
    port = args.port or config.router.port
    stop = threading.Event()
    install_stop_signals(stop)

    prepare_bundled_models(config)
    with contextlib.ExitStack() as stack:
        supervised: list[SupervisedProcess] = []
        redis_url = stack.enter_context(running_redis(config, supervised))
        config = config.model_copy(update={"redis": config.redis.model_copy(update={"url": redis_url})})
        stack.enter_context(running_ray(config))
        install_stop_signals(stop)  # again: ray.init replaced the SIGTERM handler
        stack.enter_context(running_replicas(config, cancel=stop))
        if stop.is_set():
            return 0
        stack.enter_context(running_toolboxes(config_path, config, redis_url, supervised))
        stack.enter_context(
            running_router(config_path, host, port, redis_url, config.replica.auth_token, supervised)
        )
        if args.with_prometheus:
            stack.enter_context(running_prometheus(config, f"{host}:{port}", args.prometheus_port))
        served = ", ".join(f"{m.name} ({m.replicas} × {m.engine})" for m in config.models)
        print(f"fleetgate is up: http://{host}:{port}/v1  models: {served}", flush=True)
        if not supervise(supervised, stop):
            return 1
        print("fleetgate: stopping", flush=True)
    return 0
