"""The engine's load as the registry reports it: running / waiting requests and KV-cache usage.

vLLM's scheduler reports its counts and KV-cache usage with every engine step;
a stat logger (vLLM's ``StatLoggerBase`` plug point, next to its Prometheus
logger) keeps the latest report. The front end's count of unfinished requests
is exact at every moment (an aborted request leaves it at once), so it bounds
the scheduler's last, possibly older, report.
"""

from __future__ import annotations

from collections.abc import Callable

from vllm.config import VllmConfig
from vllm.v1.metrics.loggers import StatLoggerBase
from vllm.v1.metrics.stats import IterationStats, MultiModalCacheStats, SchedulerStats

from fleetgate.core.registry import Load


class LatestSchedulerStats:
    """Holds the scheduler's most recent report."""

    def __init__(self) -> None:
        self.stats: SchedulerStats | None = None

    def logger_factory(self) -> Callable[[VllmConfig, int], StatLoggerBase]:
        """A per-engine stat logger factory for ``AsyncLLM.from_engine_args(stat_loggers=[...])``."""
        return lambda vllm_config, engine_index: _KeepLatest(self)

    def load(self, unfinished_requests: int) -> Load:
        stats = self.stats
        if unfinished_requests == 0:
            return Load(running=0, waiting=0, kv_cache_usage=0.0)
        if stats is None:  # before the scheduler's first report
            return Load(running=unfinished_requests, waiting=0, kv_cache_usage=0.0)
        waiting = min(stats.num_waiting_reqs + stats.num_skipped_waiting_reqs, unfinished_requests)
        return Load(running=unfinished_requests - waiting, waiting=waiting, kv_cache_usage=stats.kv_cache_usage)


class _KeepLatest(StatLoggerBase):  # type: ignore[misc]  # vLLM is not followed (pyproject.toml): its classes are Any
    def __init__(self, sink: LatestSchedulerStats) -> None:
        self._sink = sink

    def record(
        self,
        scheduler_stats: SchedulerStats | None,
        iteration_stats: IterationStats | None,
        mm_cache_stats: MultiModalCacheStats | None = None,
        engine_idx: int = 0,
    ) -> None:
        if scheduler_stats is not None:
            self._sink.stats = scheduler_stats

    def log_engine_initialized(self) -> None:
        pass
