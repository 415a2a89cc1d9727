"""The results of one ``fleetgate bench`` run: every measured load run, fitted CPU costs, notes; JSON round trip.

Parts append ``Measurement`` rows; the report and the plots only read them, so
``latest.json`` can be re-rendered without re-running the benchmark.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetgate.loadtest.bench.stats import CpuCostSplit, RunSummary

# Targets a measurement can have (the name tells what was in the path).
GRPC_DIRECT = "gRPC direct to sim replica"
BARE_RELAY = "bare relay (floor)"
FLEETGATE = "fleetgate"
LITELLM = "LiteLLM proxy"
VLLM_SERVER = "vLLM OpenAI server"


@dataclass
class Measurement:
    """One measured load run."""

    part: str
    target: str
    concurrency: int
    max_tokens: int
    summary: RunSummary
    # Free-form qualifier: "2 routers × 4 replicas", "short outputs", ...
    label: str = ""
    # CPU seconds of every metered process in the window, by name.
    cpu: dict[str, float | None] = field(default_factory=dict)


@dataclass
class BenchResults:
    machine: dict[str, Any]
    quick: bool
    started_at: str
    measurements: list[Measurement] = field(default_factory=list)
    # Per-request and per-token CPU fitted from short and long runs, by target.
    cpu_splits: dict[str, CpuCostSplit] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, measurement: Measurement) -> Measurement:
        self.measurements.append(measurement)
        return measurement

    def find(
        self, part: str, target: str, concurrency: int | None = None, label: str | None = None
    ) -> Measurement | None:
        for m in self.measurements:
            if (
                m.part == part
                and m.target == target
                and concurrency in (None, m.concurrency)
                and label in (None, m.label)
            ):
                return m
        return None

    def select(self, part: str, target: str | None = None, label: str | None = None) -> list[Measurement]:
        return [m for m in self.measurements
                if m.part == part and target in (None, m.target) and label in (None, m.label)]

    def to_json(self) -> str:
        return json.dumps(jsonable(dataclasses.asdict(self)), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> BenchResults:
        data = json.loads(text)
        measurements = [
            Measurement(**{**m, "summary": RunSummary(**_finite_or_nan(m["summary"]))}) for m in data["measurements"]
        ]
        splits = {k: CpuCostSplit(**v) for k, v in data.get("cpu_splits", {}).items()}
        return cls(machine=data["machine"], quick=data["quick"], started_at=data["started_at"],
                   measurements=measurements, cpu_splits=splits, notes=data.get("notes", []))

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json())


_SUMMARY_FIELDS = {f.name for f in dataclasses.fields(RunSummary)}


def _finite_or_nan(summary: dict[str, Any]) -> dict[str, Any]:
    """RunSummary fields back from JSON (NaN was stored as null)."""
    return {k: (math.nan if v is None and k.startswith(("ttft", "latency")) else v)
            for k, v in summary.items() if k in _SUMMARY_FIELDS}


def jsonable(value: Any) -> Any:
    """NaN and infinities become null (strict JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value
