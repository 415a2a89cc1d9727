"""The opt-in ``stats`` object of non-streaming responses, like LM Studio's REST API.

A caller opts in per request with the header ``x-fleetgate-stats: true`` or the
body field ``"fleetgate_stats": true`` (accepted by every dialect, ignored
otherwise). The runner then times the generation while it folds the events
(``GenerationClock``) and adds, next to the dialect's own fields::

    "stats": {"tokens_per_second": 182.4, "time_to_first_token": 0.031, "generation_time": 0.351,
              "prompt_tokens": 12, "completion_tokens": 64, "replica": "smollm2-135m-0"}

- ``time_to_first_token``: seconds from the router receiving the request to the
  first output (text, reasoning or tool call) arriving from the replica;
- ``generation_time``: seconds from that first output to the end of the generation;
- ``tokens_per_second``: ``completion_tokens / generation_time`` (0 when no time passed);
- ``prompt_tokens``, ``completion_tokens``: the usage; ``replica``: the replica that served it.

Streaming responses never carry it (their timing is the stream itself).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from fleetgate.router.canonical.fold import Completion

STATS_HEADER = "x-fleetgate-stats"
STATS_FIELD = "fleetgate_stats"
STATS_KEY = "stats"
_TRUE_HEADER_VALUES = frozenset({"true", "1", "yes"})


def wants_stats(headers: Mapping[str, str], body: Any) -> bool:
    """Whether the request opted in, by header or body field."""
    if headers.get(STATS_HEADER, "").strip().lower() in _TRUE_HEADER_VALUES:
        return True
    return isinstance(body, dict) and body.get(STATS_FIELD) is True


class GenerationClock:
    """When a request arrived, when its first output arrived, and when it finished."""

    def __init__(self, now: Callable[[], float] = time.perf_counter) -> None:
        self._now = now
        self.received = now()
        self.first_output: float | None = None
        self.finished: float | None = None

    def output(self) -> None:
        """An output (content) event arrived."""
        if self.first_output is None:
            self.first_output = self._now()

    def finish(self) -> None:
        self.finished = self._now()

    def stats(self, completion: Completion, replica: str) -> dict[str, Any]:
        """The ``stats`` object for a finished completion."""
        finished = self.finished if self.finished is not None else self._now()
        first = self.first_output if self.first_output is not None else finished
        generation_time = max(finished - first, 0.0)
        completion_tokens = completion.usage.completion_tokens
        return {
            "tokens_per_second": completion_tokens / generation_time if generation_time > 0 else 0.0,
            "time_to_first_token": first - self.received,
            "generation_time": generation_time,
            "prompt_tokens": completion.usage.prompt_tokens,
            "completion_tokens": completion_tokens,
            "replica": replica,
        }
