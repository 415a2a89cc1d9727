"""One policy run's processes: a fresh redis-server, N sim replicas and R routers set to the policy.

Everything is new for every run, so each policy starts from cold replicas and an
empty prefix index. Replicas start side by side (threads waiting on their
registration); routers get the policy through ``FLEETGATE_ROUTER__ROUTING_POLICY``.
Leaving the ``ProcessSet`` stops all of them.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from fleetgate.core.registry import ReplicaRecord
from fleetgate.loadtest.bench.processes import ManagedProcess, ProcessSet, start_redis, start_replica, start_router
from fleetgate.loadtest.bench.trace.sim_model import MODEL

POLICY_ENV = "FLEETGATE_ROUTER__ROUTING_POLICY"


@dataclass(frozen=True)
class TraceCluster:
    redis_url: str
    replicas: list[ReplicaRecord]
    routers: list[ManagedProcess]
    router_urls: list[str]


def start_cluster(processes: ProcessSet, config_path: Path, *, replicas: int, routers: int,
                  routing_policy: str) -> TraceCluster:
    redis_url = start_redis(processes)
    with ThreadPoolExecutor(max_workers=replicas) as pool:
        started = list(pool.map(lambda i: start_replica(processes, config_path, MODEL, redis_url,
                                                        name=f"sim-replica-{i}", timeout=120.0), range(replicas)))
    env = {POLICY_ENV: routing_policy}
    fronts = [start_router(processes, config_path, MODEL, redis_url, name=f"router-{i}", env=env)
              for i in range(routers)]
    return TraceCluster(redis_url=redis_url, replicas=[record for _, record in started],
                        routers=[process for process, _ in fronts], router_urls=[url for _, url in fronts])
