"""Replica-level Prometheus metrics, served with vLLM's own ``vllm:`` metrics on the replica's HTTP port.

Names are fixed here so dashboards and alert rules can rely on them. Label
``replica`` is the replica id, ``model`` the served model name (both bounded by the config).
"""

from __future__ import annotations

from prometheus_client import REGISTRY, Counter, Gauge

RUNNING = Gauge("fleetgate_replica_running", "Requests running in the engine", ["model", "replica"], registry=REGISTRY)
WAITING = Gauge("fleetgate_replica_waiting", "Requests queued in the engine", ["model", "replica"], registry=REGISTRY)
KV_CACHE_USAGE = Gauge(
    "fleetgate_replica_kv_cache_usage_ratio",
    "KV-cache usage 0..1 (-1 when not reported)",
    ["model", "replica"],
    registry=REGISTRY,
)
IN_FLIGHT = Gauge(
    "fleetgate_replica_in_flight", "gRPC Generate calls open on this replica", ["model", "replica"], registry=REGISTRY
)
REQUESTS = Counter(
    "fleetgate_replica_requests",
    "Generate calls finished, by finish reason",
    ["model", "replica", "reason"],
    registry=REGISTRY,
)
PROMPT_TOKENS = Counter(
    "fleetgate_replica_prompt_tokens", "Prompt tokens processed", ["model", "replica"], registry=REGISTRY
)
GENERATED_TOKENS = Counter(
    "fleetgate_replica_generated_tokens", "Completion tokens generated", ["model", "replica"], registry=REGISTRY
)
ABORTS = Counter(
    "fleetgate_replica_aborts", "Requests aborted (client cancel or Abort)", ["model", "replica"], registry=REGISTRY
)
