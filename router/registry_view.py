"""This router's view of the replica registry, refreshed from Redis every ``router.registry_refresh_seconds``.

Reads the records ``fleetgate/core/registry.py`` defines (a replica's key expires when
its heartbeat stops, and a draining replica is excluded). Per model it keeps the
healthy replicas, their published load, context length and capabilities, and
sets ``fleetgate_healthy_replicas``. A replica this router failed to reach is
quarantined locally (until its registry record expires, or it restarts with a
new ``started_at``), so requests stop going to a dead replica at once. When
Redis is unreachable the last view is kept: replicas may well be fine; ``readable``
says whether the last read succeeded (a model the view does not know is then
"state store unavailable" rather than "unknown"). When Redis answers again after
an outage, replicas whose records expired meanwhile have not re-registered yet:
for ``grace_seconds`` (about two heartbeats) the records of the last view that the
new reads lack are kept, so the router does not answer "no healthy replica" while
heartbeats return (a replica that really died is quarantined on its first failure).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import redis.asyncio as aioredis

from fleetgate.core.config import ModelConfig
from fleetgate.core.registry import Capabilities, ReplicaRecord, read_all
from fleetgate.router import metrics

log = logging.getLogger("fleetgate.router.registry")


@dataclass
class ModelView:
    """One model as the router sees it."""

    name: str
    healthy: list[ReplicaRecord] = field(default_factory=list)
    configured: bool = False
    max_context_length: int = 0
    capabilities: Capabilities = field(default_factory=Capabilities)


class RegistryView:
    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        configured_models: Iterable[ModelConfig] = (),
        refresh_seconds: float = 1.0,
        quarantine_seconds: float = 5.0,
        on_addresses: Callable[[set[str]], Awaitable[None]] | None = None,
        grace_seconds: float = 0.0,
    ) -> None:
        self.redis = redis
        self.refresh_seconds = refresh_seconds
        self.quarantine_seconds = quarantine_seconds
        self.grace_seconds = grace_seconds
        self._configured = {m.name: m for m in configured_models}
        self._on_addresses = on_addresses
        self._records: dict[str, ReplicaRecord] = {}
        # replica id -> (quarantined until, started_at of the process that failed)
        self._quarantine: dict[str, tuple[float, float]] = {}
        # What a model's replicas last reported, kept while none is up.
        self._last_seen: dict[str, tuple[int, Capabilities]] = {}
        self._task: asyncio.Task[None] | None = None
        # Whether the last read of the registry succeeded.
        self.readable = False
        # After an outage: the records of the view before it, kept until the monotonic time `_grace_until`.
        self._kept: dict[str, ReplicaRecord] = {}
        self._grace_until = 0.0

    # -- refreshing ------------------------------------------------------------

    async def refresh(self) -> None:
        try:
            records = await read_all(self.redis)
        except Exception:
            if self.readable and self._records:
                self._kept = self._records  # what to bridge the return of heartbeats with
            self.readable = False
            raise
        if not self.readable and self._kept:
            self._grace_until = time.monotonic() + self.grace_seconds
        self.readable = True
        self._records = self._within_grace({r.replica_id: r for r in records})
        records = list(self._records.values())
        for r in records:
            if not r.draining:
                self._last_seen[r.model] = (r.max_context_length, r.capabilities)
        for name in self.model_names():
            metrics.HEALTHY_REPLICAS.labels(model=name).set(len(self.healthy(name)))
        if self._on_addresses is not None:
            await self._on_addresses({r.address for r in records})

    def _within_grace(self, read: dict[str, ReplicaRecord]) -> dict[str, ReplicaRecord]:
        """``read``, plus, during the grace after an outage, the kept records it lacks."""
        if not self._kept:
            return read
        if time.monotonic() >= self._grace_until:
            self._kept = {}
            return read
        return {**self._kept, **read}

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_seconds)
            try:
                await self.refresh()
            except (aioredis.RedisError, OSError) as exc:
                log.warning("registry refresh failed, keeping the last view: %s", exc)
            except Exception:
                log.exception("registry refresh failed")

    async def start(self) -> None:
        """Read the registry once (best effort), then keep it fresh in the background."""
        try:
            await self.refresh()
        except Exception as exc:  # the loop keeps trying; the router serves once replicas are visible
            log.warning("registry not readable at startup: %s", exc)
        self._task = asyncio.create_task(self._loop(), name="registry-refresh")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    # -- queries ---------------------------------------------------------------

    def mark_failed(self, record: ReplicaRecord) -> None:
        """Stop routing to ``record`` until its registry record expires or the replica restarts."""
        self._quarantine[record.replica_id] = (time.monotonic() + self.quarantine_seconds, record.started_at)

    def _quarantined(self, record: ReplicaRecord) -> bool:
        entry = self._quarantine.get(record.replica_id)
        if entry is None:
            return False
        until, started_at = entry
        if time.monotonic() >= until or record.started_at != started_at:
            del self._quarantine[record.replica_id]
            return False
        return True

    def healthy(self, model: str, exclude: Iterable[str] = ()) -> list[ReplicaRecord]:
        """Replicas serving ``model`` that are registered, not draining, not quarantined, not in ``exclude``."""
        excluded = set(exclude)
        return [
            r for r in self._records.values()
            if r.model == model and not r.draining and r.replica_id not in excluded and not self._quarantined(r)
        ]

    def record(self, replica_id: str) -> ReplicaRecord | None:
        return self._records.get(replica_id)

    def model_names(self) -> list[str]:
        """Configured models first (config order), then models only the registry knows."""
        names = list(self._configured)
        names += sorted({r.model for r in self._records.values()} - set(names))
        return names

    def serves(self, model: str) -> bool:
        return model in self._configured or any(r.model == model for r in self._records.values())

    def model(self, name: str) -> ModelView | None:
        if not self.serves(name) and name not in self._last_seen:
            return None
        healthy = self.healthy(name)
        view = ModelView(name=name, healthy=healthy, configured=name in self._configured)
        if healthy:
            view.max_context_length = max(r.max_context_length for r in healthy)
            view.capabilities = Capabilities(
                tools=any(r.capabilities.tools for r in healthy),
                reasoning=any(r.capabilities.reasoning for r in healthy),
                vision=all(r.capabilities.vision for r in healthy),
                structured_output=any(r.capabilities.structured_output for r in healthy),
                embeddings=any(r.capabilities.embeddings for r in healthy),
            )
        elif name in self._last_seen:
            view.max_context_length, view.capabilities = self._last_seen[name]
        elif name in self._configured:
            configured = self._configured[name]
            view.capabilities = Capabilities(vision=configured.vision, embeddings=configured.task == "embed")
        return view

    def models(self) -> list[ModelView]:
        return [view for name in self.model_names() if (view := self.model(name)) is not None]

    def missing_models(self) -> list[str]:
        """Configured models without a healthy replica, except elastic ones (a `scaling` section: none may be
        loaded, and a request loads one)."""
        return [name for name, model in self._configured.items() if model.scaling is None and not self.healthy(name)]
