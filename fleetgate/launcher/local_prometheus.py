"""A local Prometheus for ``fleetgate up --with-prometheus``: config, target discovery, process.

Prometheus finds its targets by file service discovery. Two JSON files in
``<work_dir>/sd/`` are kept current: ``routers.json`` (the routers named in the
fleetgate config, plus any extra ones the caller knows about) and ``replicas.json``
(every replica in the Redis registry, from its ``metrics_url``; a feeder thread
rewrites it whenever the registry changes). The runtime ``prometheus.yml`` is
``deploy/prometheus/prometheus.yml`` with absolute paths to its rule files and to
those SD files, so the repo's config stays the one source of truth.

The translations (records → target groups, base config → runtime config) are pure
functions; the feeder loop and the Prometheus process are the I/O around them.

    handle = start_prometheus(config, work_dir=Path("/tmp/fg-prom"), port=9090)
    print(handle.url)   # http://127.0.0.1:9090
    handle.stop()

Run by hand beside an already running cluster:
``python -m fleetgate.launcher.local_prometheus --config deploy/local-sim.yaml``.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import redis.asyncio as aioredis
import yaml

from fleetgate.core.config import FleetgateConfig, load_config
from fleetgate.core.local_processes import free_port, terminate, wait_until
from fleetgate.core.registry import ReplicaRecord, read_all
from fleetgate.core.shipped import shipped_path

log = logging.getLogger(__name__)

PROMETHEUS_DIR = shipped_path("prometheus")
BASE_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
ROUTERS_SD = Path("sd") / "routers.json"
REPLICAS_SD = Path("sd") / "replicas.json"
DEFAULT_BINARY = "/usr/bin/prometheus"
WILDCARD_HOSTS = {"0.0.0.0", "::", ""}

TargetGroup = dict[str, Any]


# --- pure translations ---------------------------------------------------------------


def router_addresses(config: FleetgateConfig, extra: Iterable[str] = ()) -> list[str]:
    """host:port of every router to scrape: the configured one, then ``extra`` (deduplicated)."""
    host = "127.0.0.1" if config.router.host in WILDCARD_HOSTS else config.router.host
    addresses = [f"{host}:{config.router.port}", *extra]
    return list(dict.fromkeys(addresses))


def router_target_groups(addresses: Sequence[str]) -> list[TargetGroup]:
    """File-SD content for the routers (each serves ``/metrics`` on its HTTP port)."""
    return [{"targets": list(addresses), "labels": {}}] if addresses else []


def replica_target_groups(records: Iterable[ReplicaRecord]) -> list[TargetGroup]:
    """File-SD content for the replicas: one group per replica that has a metrics URL.

    The group labels name the replica, its model and engine (``replica``, ``model``,
    ``engine``), and carry the URL's scheme and path as Prometheus' ``__scheme__`` and
    ``__metrics_path__``. Sorted by replica id, so equal registries give equal files.
    """
    groups: list[TargetGroup] = []
    for record in sorted(records, key=lambda r: r.replica_id):
        if not record.metrics_url:
            continue
        url = urlsplit(record.metrics_url)
        groups.append(
            {
                "targets": [url.netloc],
                "labels": {
                    "__scheme__": url.scheme or "http",
                    "__metrics_path__": url.path or "/metrics",
                    "replica": record.replica_id,
                    "model": record.model,
                    "engine": record.engine,
                },
            }
        )
    return groups


def runtime_prometheus_config(
    base: dict[str, Any],
    *,
    base_dir: Path,
    sd_root: Path,
    scrape_interval: str | None = None,
) -> dict[str, Any]:
    """The base config with rule files resolved against ``base_dir``, file-SD paths against
    ``sd_root``, and (optionally) both global intervals set to ``scrape_interval``."""
    config = copy.deepcopy(base)
    config["rule_files"] = [str((base_dir / pattern).resolve()) for pattern in config.get("rule_files", [])]
    for job in config.get("scrape_configs", []):
        for sd in job.get("file_sd_configs", []):
            sd["files"] = [str(sd_root / pattern) for pattern in sd["files"]]
    if scrape_interval:
        config.setdefault("global", {}).update(scrape_interval=scrape_interval, evaluation_interval=scrape_interval)
    return config


# --- file I/O ------------------------------------------------------------------------


def write_json_if_changed(path: Path, data: Any) -> bool:
    """Write ``data`` as JSON atomically (Prometheus never sees half a file); False if unchanged."""
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    if path.exists() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return True


def write_runtime_config(work_dir: Path, scrape_interval: str | None) -> Path:
    base = yaml.safe_load(BASE_CONFIG.read_text())
    config = runtime_prometheus_config(base, base_dir=PROMETHEUS_DIR, sd_root=work_dir, scrape_interval=scrape_interval)
    path = work_dir / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


# --- the registry feeder -------------------------------------------------------------


class ReplicaTargetFeeder:
    """A thread that mirrors the Redis replica registry into the replicas file-SD file."""

    def __init__(self, redis_url: str, sd_path: Path, *, interval_seconds: float = 1.0) -> None:
        self.redis_url = redis_url
        self.sd_path = sd_path
        self.interval_seconds = interval_seconds
        self._stop = threading.Event()
        self._first_pass_done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prometheus-sd-feeder", daemon=True)

    def start(self, first_pass_timeout: float = 5.0) -> None:
        """Start the thread; returns after its first pass, so Prometheus starts with the targets."""
        write_json_if_changed(self.sd_path, [])
        self._thread.start()
        self._first_pass_done.wait(first_pass_timeout)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval_seconds + 5)

    def _run(self) -> None:
        asyncio.run(self._loop())

    async def _loop(self) -> None:
        redis = aioredis.Redis.from_url(self.redis_url)
        try:
            while not self._stop.is_set():
                try:
                    records = await read_all(redis)
                except (aioredis.RedisError, OSError) as exc:
                    log.warning("prometheus SD: cannot read the replica registry: %s", exc)
                else:
                    if write_json_if_changed(self.sd_path, replica_target_groups(records)):
                        log.info("prometheus SD: %d replica target(s)", len(records))
                self._first_pass_done.set()
                await asyncio.sleep(self.interval_seconds)
        finally:
            await redis.aclose()


# --- the Prometheus process ----------------------------------------------------------


class LocalPrometheus:
    """A running Prometheus and its feeder; ``stop()`` ends both and removes the TSDB."""

    def __init__(self, process: subprocess.Popen[bytes], feeder: ReplicaTargetFeeder, url: str,
                 work_dir: Path, config_path: Path, storage_dir: Path) -> None:
        self.process = process
        self.feeder = feeder
        self.url = url
        self.work_dir = work_dir
        self.config_path = config_path
        self.storage_dir = storage_dir

    def stop(self) -> None:
        self.feeder.stop()
        terminate(self.process, what="prometheus", timeout=15)
        shutil.rmtree(self.storage_dir, ignore_errors=True)

    def __enter__(self) -> LocalPrometheus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _wait_ready(process: subprocess.Popen[bytes], url: str, log_path: Path, timeout: float) -> None:
    wait_until(lambda: httpx.get(f"{url}/-/ready", timeout=1.0).status_code == 200, what=f"prometheus at {url}",
               timeout=timeout, process=process, log_path=log_path, interval=0.2, tolerate=(httpx.HTTPError,))


def start_prometheus(
    config: FleetgateConfig,
    *,
    work_dir: str | os.PathLike[str],
    port: int = 9090,
    host: str = "127.0.0.1",
    extra_router_targets: Sequence[str] = (),
    scrape_interval: str | None = None,
    sd_refresh_seconds: float = 1.0,
    binary: str | None = None,
    ready_timeout: float = 60.0,
) -> LocalPrometheus:
    """Start Prometheus scraping the cluster ``config`` describes; returns once it is ready.

    ``port=0`` picks a free port. ``extra_router_targets`` adds routers (host:port) that
    are not the configured one. ``scrape_interval`` (e.g. "1s") overrides the base
    config's scrape and rule-evaluation interval.
    """
    work = Path(work_dir).expanduser().resolve()
    work.mkdir(parents=True, exist_ok=True)
    write_json_if_changed(work / ROUTERS_SD, router_target_groups(router_addresses(config, extra_router_targets)))
    config_path = write_runtime_config(work, scrape_interval)
    feeder = ReplicaTargetFeeder(config.redis_url, work / REPLICAS_SD, interval_seconds=sd_refresh_seconds)
    feeder.start()

    executable = binary or shutil.which("prometheus") or DEFAULT_BINARY
    port = port or free_port(host)
    url = f"http://{host}:{port}"
    storage_dir = Path(tempfile.mkdtemp(prefix="tsdb-", dir=work))
    log_path = work / "prometheus.log"
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(
            [executable, f"--config.file={config_path}", f"--storage.tsdb.path={storage_dir}",
             f"--web.listen-address={host}:{port}", "--storage.tsdb.retention.time=1d", "--web.enable-lifecycle"],
            stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    handle = LocalPrometheus(process, feeder, url, work, config_path, storage_dir)
    try:
        _wait_ready(process, url, log_path, ready_timeout)
    except BaseException:
        handle.stop()
        raise
    return handle


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run a local Prometheus scraping a running fleetgate cluster.")
    parser.add_argument("--config", default=None, help="fleetgate YAML config (default deploy/local.yaml)")
    parser.add_argument("--work-dir", default="~/.cache/fleetgate/prometheus")
    parser.add_argument("--port", type=int, default=9090)
    parser.add_argument("--router", action="append", default=[], help="another router host:port to scrape")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    handle = start_prometheus(load_config(args.config), work_dir=args.work_dir, port=args.port,
                              extra_router_targets=args.router)
    print(f"prometheus: {handle.url}", flush=True)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        stopped.wait()
    except KeyboardInterrupt:
        pass
    finally:
        handle.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
