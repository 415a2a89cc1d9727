"""The priority a request is added to vLLM with: its ``GenerateRequest.priority`` when the engine schedules by
priority, else 0.

vLLM orders its waiting queue by (priority, arrival), lower first, and preempts
the running request of the worst priority when KV blocks run out, only when the
engine runs with ``scheduling_policy: priority`` (``SchedulerConfig.policy``,
set through the model's ``engine_args``). Under the default ``fcfs`` a priority
means nothing, and vLLM's API documents that a nonzero one is an error there,
so the replica passes 0: a key's priority (its policy's ``priority``, which the
router puts on every request) then changes nothing, as it should.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# vLLM's SchedulerPolicy value (engine_args key scheduling_policy) that orders requests by priority.
PRIORITY_POLICY = "priority"


def schedules_by_priority(engine_args: Mapping[str, Any]) -> bool:
    """Whether a model with these ``engine_args`` runs vLLM's priority scheduler."""
    return engine_args.get("scheduling_policy") == PRIORITY_POLICY


def engine_priority(engine_args: Mapping[str, Any], priority: int) -> int:
    """The ``priority`` argument of ``AsyncLLM.add_request`` for a request of ``priority``."""
    return priority if schedules_by_priority(engine_args) else 0
