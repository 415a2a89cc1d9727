"""What the replay watches besides its own requests: the replicas' load over time and the routers' metrics.

``LoadSampler`` reads every replica's registry record (running + waiting, as the
replica heartbeats it into Redis) every ``interval_s`` while the replay runs;
``load_spread`` is the busiest replica's mean queue over the fleet's mean.
``scrape_counters`` sums a counter over every router's ``/metrics``, optionally by
one label.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

import httpx
import redis.asyncio as aioredis
from prometheus_client.parser import text_string_to_metric_families

from fleetgate.core import registry

PREDICTED_CACHED_TOKENS = "fleetgate_prefix_predicted_cached_tokens"
ROUTING_DECISIONS = "fleetgate_routing_decisions"
# Seconds a registry read may take before the sample is skipped.
SAMPLE_TIMEOUT_S = 2.0


class LoadSampler:
    """Per replica id, the queue (running + waiting) its registry record showed at each sample.

    ``stop`` asks the loop to end between two samples rather than cancelling it inside a Redis call (a
    redis-py client cancelled mid-command can hang its ``aclose``); every call has a socket timeout.
    """

    def __init__(self, redis_url: str, interval_s: float = 0.5) -> None:
        self.redis_url = redis_url
        self.interval_s = interval_s
        self.samples: dict[str, list[int]] = defaultdict(list)
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        client = aioredis.Redis.from_url(self.redis_url, socket_timeout=SAMPLE_TIMEOUT_S,
                                         socket_connect_timeout=SAMPLE_TIMEOUT_S)
        try:
            while not self._stopping.is_set():
                try:
                    records = await registry.read_all(client)
                except (aioredis.RedisError, OSError):
                    records = []
                for record in records:
                    self.samples[record.replica_id].append(record.load.running + record.load.waiting)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.interval_s)
        finally:
            await client.aclose()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            await asyncio.wait({self._task}, timeout=4 * SAMPLE_TIMEOUT_S)

    def mean_queues(self) -> dict[str, float]:
        return {replica: sum(values) / len(values) for replica, values in self.samples.items() if values}


def load_spread(mean_queues: Mapping[str, float]) -> float:
    """The busiest replica's mean queue over the fleet's mean (1.0 is perfectly even; NaN on an idle fleet)."""
    if not mean_queues:
        return math.nan
    fleet_mean = sum(mean_queues.values()) / len(mean_queues)
    return max(mean_queues.values()) / fleet_mean if fleet_mean > 0 else math.nan


def counter_totals(texts: Iterable[str], name: str, by_label: str | None = None) -> dict[str, float]:
    """Counter ``name`` summed over Prometheus exposition ``texts``: under "" or per value of ``by_label``."""
    totals: dict[str, float] = defaultdict(float)
    for text in texts:
        for family in text_string_to_metric_families(text):
            if family.name != name:
                continue
            for sample in family.samples:
                if sample.name == name + "_total":
                    totals[sample.labels.get(by_label, "") if by_label else ""] += sample.value
    return dict(totals)


async def scrape(router_urls: Sequence[str]) -> list[str]:
    """Every router's ``/metrics`` text (a router that does not answer is left out)."""
    async with httpx.AsyncClient(timeout=10.0) as client:
        texts = []
        for url in router_urls:
            try:
                resp = await client.get(url.rstrip("/") + "/metrics")
            except httpx.HTTPError:
                continue
            if resp.status_code == 200:
                texts.append(resp.text)
        return texts
