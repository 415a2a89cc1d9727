"""Everything one ``fleetgate bench trace`` invocation measured, written as ``latest.json``.

The report and the plots read only this, so they can be re-rendered from the JSON.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetgate.loadtest.bench.trace.summary import PolicyResult


@dataclass
class TraceResults:
    machine: dict[str, Any]
    started_at: str
    quick: bool
    trace: str
    # The replayed window: start and duration in trace seconds, request limit, and its TraceShape.
    window: dict[str, Any]
    # The sim config the replicas ran (the model's `sim` section) and the cluster's shape.
    sim: dict[str, Any]
    # The sim clock's dilation: `sim` holds the dilated times, the model's are those over it.
    time_scale: float
    replicas: int
    routers: int
    dialect: str
    knee_factor: float = 4.0
    # p2c's speed sweep (--find-knee) and the knee it found.
    knee_sweep: list[PolicyResult] = field(default_factory=list)
    knee: float | None = None
    runs: list[PolicyResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def speeds(self) -> list[float]:
        return sorted({r.speed for r in self.runs})

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        data["knee_sweep"] = [r.json_line() for r in self.knee_sweep]
        data["runs"] = [r.json_line() for r in self.runs]
        return json.dumps(data, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> TraceResults:
        data = json.loads(text)
        data["knee_sweep"] = [_policy_result(row) for row in data.get("knee_sweep", [])]
        data["runs"] = [_policy_result(row) for row in data.get("runs", [])]
        return cls(**data)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json())


_FLOAT_FIELDS = {f.name for f in dataclasses.fields(PolicyResult) if f.type == "float"}


def _policy_result(row: dict[str, Any]) -> PolicyResult:
    """A PolicyResult back from its JSON line (NaN was written as null)."""
    values: dict[str, Any] = {k: (math.nan if v is None and k in _FLOAT_FIELDS else v) for k, v in row.items()}
    return PolicyResult(**values)
