"""What ``fleetgate bench fair-share`` measured (``latest.json``) and its report (``latest.md``), and the verdicts.

Pure: the numbers come in, JSON and Markdown go out, so a report can be re-rendered from its JSON. Latencies and
throughputs are in the model's time (the sim's clock was dilated ``time_scale``-fold; see ``run.py``).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetgate.loadtest.bench.results import jsonable
from fleetgate.loadtest.bench.stats import RequestRecord, percentile, ratio

# The light key's TTFT p50 under fair share may be at most this many times its idle value (issue 15).
LIGHT_TTFT_TARGET = 1.5
# The heavy key keeps the capacity nobody else uses: under fair share, at least this share of its throughput
# alone scaled to the slots the light key leaves it, with the slots this full on average.
HEAVY_THROUGHPUT_TARGET = 0.9
SLOTS_BUSY_TARGET = 0.95


@dataclass(frozen=True)
class KeyStats:
    """One key's requests in a run's window: TTFT of those that started in it, output of those that ended in it."""

    requests: int
    errors: int
    ttft_p50_ms: float
    ttft_p90_ms: float
    tokens_per_second: float
    # Its requests outstanding, on average over the window (the slots it held, and its waits in the queue).
    in_flight: float = math.nan
    first_error: str | None = None

    @classmethod
    def of(cls, records: list[RequestRecord], window: tuple[float, float], time_scale: float) -> KeyStats:
        began, ended = window
        started = [r for r in records if began <= r.started < ended]
        ok = [r for r in started if r.ok]
        ttfts = [r.ttft * 1000 / time_scale for r in ok if r.ttft is not None]
        finished = [r for r in records if r.ok and began <= r.ended < ended]
        tokens = sum(r.tokens for r in finished)
        held = sum(max(0.0, min(r.ended, ended) - max(r.started, began)) for r in records)
        span = ended - began
        return cls(
            requests=len(ok), errors=len(started) - len(ok), ttft_p50_ms=percentile(ttfts, 50),
            ttft_p90_ms=percentile(ttfts, 90),
            tokens_per_second=tokens / span * time_scale if span > 0 else math.nan,
            in_flight=held / span if span > 0 else math.nan,
            first_error=next((r.error for r in started if r.error), None),
        )


@dataclass(frozen=True)
class Run:
    name: str
    policy: str
    window_seconds: float  # wall
    light: KeyStats | None
    heavy: KeyStats | None
    slots_in_use: float  # mean of fleetgate_admission_in_flight over the window
    queued: float  # mean of fleetgate_admission_queue_depth
    heavy_waiting: float  # mean of fleetgate_admission_waiting_by_key for the heavy key
    machine_busy: float | None  # share of the machine's cores busy over the window


@dataclass
class FairShareResults:
    machine: dict[str, Any]
    started_at: str
    quick: bool
    shape: dict[str, Any]
    sim: dict[str, Any]
    capacity: int
    runs: list[Run] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def run(self, name: str) -> Run | None:
        return next((r for r in self.runs if r.name == name), None)

    def verdicts(self) -> dict[str, str]:
        idle, alone, fair = self.run("idle"), self.run("heavy_alone"), self.run("fair_share")
        out: dict[str, str] = {}
        if idle and fair and idle.light and fair.light:
            times = ratio(fair.light.ttft_p50_ms, idle.light.ttft_p50_ms)
            met = times <= LIGHT_TTFT_TARGET
            out["light_ttft"] = (f"{'met' if met else 'missed'}: the light key's TTFT p50 under fair share is "
                                 f"{times:.2f}x its idle value (target <= {LIGHT_TTFT_TARGET:g}x)")
        if alone and fair and alone.heavy and fair.heavy:
            left = 1 - (fair.light.in_flight if fair.light else 0.0) / self.capacity
            share = ratio(fair.heavy.tokens_per_second, alone.heavy.tokens_per_second * left)
            busy = fair.slots_in_use / self.capacity
            met = share >= HEAVY_THROUGHPUT_TARGET and busy >= SLOTS_BUSY_TARGET
            out["heavy_capacity"] = (
                f"{'met' if met else 'missed'}: under fair share the slots are {busy:.0%} busy and the heavy key "
                f"gets {share:.0%} of its throughput alone scaled to the {left:.1%} of them the light key leaves "
                f"at least (its requests outstanding, waits included; targets >= {SLOTS_BUSY_TARGET:.0%}, "
                f">= {HEAVY_THROUGHPUT_TARGET:.0%})")
        return out

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        data["verdicts"] = self.verdicts()
        return json.dumps(jsonable(data), indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> FairShareResults:
        data = json.loads(text)
        data.pop("verdicts", None)
        runs = [Run(**{**row, "light": _stats(row["light"]), "heavy": _stats(row["heavy"])}) for row in data["runs"]]
        return cls(**{**data, "runs": runs})

    def save(self, out_dir: Path) -> Path:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "latest.json").write_text(self.to_json())
        report = out_dir / "latest.md"
        report.write_text(render_markdown(self))
        return report


def _stats(row: dict[str, Any] | None) -> KeyStats | None:
    if row is None:
        return None
    values: dict[str, Any] = {k: (math.nan if v is None and k != "first_error" else v) for k, v in row.items()}
    return KeyStats(**values)


def _ms(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:,.0f} ms"


def _rate(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:,.0f}"


def render_markdown(results: FairShareResults) -> str:
    shape, sim = results.shape, results.sim
    idle = results.run("idle")
    idle_p50 = idle.light.ttft_p50_ms if idle and idle.light else math.nan
    lines = [
        "# Fair share between API keys under contention (`fleetgate bench fair-share`)",
        "",
        f"Run {results.started_at}{' (quick)' if results.quick else ''} on {results.machine.get('cpu_model')}, "
        f"{results.machine.get('usable_cores')} usable cores.",
        "",
        f"Cluster: {shape['replicas']} sim replicas x max_num_seqs {shape['max_num_seqs']} = {results.capacity} "
        "slots in the router's admission queue; auth on, two keys. The heavy key keeps "
        f"{shape['heavy_streams']} streams in flight ({shape['heavy_prompt_words']}-token prompts, "
        f"{shape['heavy_tokens'][0]}-{shape['heavy_tokens'][1]} tokens out); the light key sends one request at a "
        f"time ({shape['light_prompt_words']}-token prompt, {shape['light_tokens']} tokens out). The sim stands "
        f"for a GPU serving a mid-size model: prefill {shape['gpu']['prefill_ms_per_1k_tokens']:g} ms per 1,000 "
        f"tokens, first token {shape['gpu']['ttft_ms']:g} ms after it, {shape['gpu']['itl_ms']:g} ms per decode "
        f"step (+{shape['gpu']['itl_batch_penalty']:.1%} per other running sequence), prefix caching off; its "
        f"clock dilated {shape['time_scale']:g}x (the machine streams fewer tokens per second), and every time "
        "below is model time (wall / the dilation). Machine busy counts every process on the machine.",
        "",
        "| run | policy | light TTFT p50 | vs idle | light TTFT p90 | light requests | heavy tokens/s | "
        "light tokens/s | slots in use | light outstanding | queued | machine busy |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in results.runs:
        light, heavy = run.light, run.heavy
        vs_idle = ratio(light.ttft_p50_ms, idle_p50) if light else math.nan
        lines.append(
            f"| {run.name} | {run.policy} | {_ms(light.ttft_p50_ms) if light else '–'} | "
            f"{'–' if math.isnan(vs_idle) else f'{vs_idle:.2f}x'} | {_ms(light.ttft_p90_ms) if light else '–'} | "
            f"{light.requests if light else '–'} | {_rate(heavy.tokens_per_second) if heavy else '–'} | "
            f"{_rate(light.tokens_per_second) if light else '–'} | {run.slots_in_use:.1f} / {results.capacity} | "
            f"{f'{light.in_flight:.2f}' if light else '–'} | "
            f"{run.queued:.1f} | {'–' if run.machine_busy is None else f'{run.machine_busy:.0%}'} |"
        )
    lines += ["", "Verdicts:", ""]
    lines += [f"- {name}: {text}" for name, text in results.verdicts().items()] or ["- none (a run is missing)"]
    errors = [(run.name, who, stats) for run in results.runs for who, stats in (("light", run.light),
                                                                                ("heavy", run.heavy))
              if stats is not None and stats.errors]
    if errors:
        lines += ["", "Errors:", ""]
        lines += [f"- {name}, {who} key: {stats.errors} (first: {stats.first_error})" for name, who, stats in errors]
    if results.notes:
        lines += ["", "Notes:", ""] + [f"- {note}" for note in results.notes]
    lines += ["", f"Sim settings (dilated): `{json.dumps(sim, sort_keys=True)}`", ""]
    return "\n".join(lines)
