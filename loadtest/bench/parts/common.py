"""What every part shares: the run's context (sizes, directories, results) and "measure a target, record a row"."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fleetgate.loadtest.bench import configs
from fleetgate.loadtest.bench.cpu import MACHINE, CpuMeter, MachineCpuMeter
from fleetgate.loadtest.bench.loadgen import LoadPlan, LoadTarget, measure
from fleetgate.loadtest.bench.processes import ManagedProcess, ProcessSet, start_litellm_proxy
from fleetgate.loadtest.bench.results import BenchResults, Measurement
from fleetgate.loadtest.bench.stats import summarize


@dataclass
class BenchContext:
    quick: bool
    # Per-part process logs and generated configs.
    work_dir: Path
    results: BenchResults
    # LiteLLM's proxy executable when part (d) runs, else None.
    litellm_bin: Path | None = None

    def log_dir(self, part: str) -> Path:
        return self.work_dir / f"part-{part}"


def say(message: str) -> None:
    print(f"[bench] {message}", flush=True)


def record_run(ctx: BenchContext, *, part: str, target_name: str, target: LoadTarget, plan: LoadPlan,
               max_tokens: int, meters: Sequence[CpuMeter] = (), measured: str | None = None,
               label: str = "") -> Measurement:
    """Run ``plan`` against ``target``, summarize it (CPU of the meter named ``measured``) and add the row.

    The whole machine's busy time is always metered too (``cpu[MACHINE]``).
    """
    run = asyncio.run(measure(target, plan, [*meters, MachineCpuMeter(MACHINE)]))
    summary = summarize(run.records, run.wall_seconds, run.cpu_seconds.get(measured) if measured else None)
    row = ctx.results.add(Measurement(part=part, target=target_name, concurrency=plan.concurrency,
                                      max_tokens=max_tokens, summary=summary, label=label, cpu=run.cpu_seconds))
    errors = f", {summary.errors} errors" if summary.errors else ""
    say(f"  ({part}) {target_name} {label} c={plan.concurrency}: {summary.requests} requests{errors}, "
        f"{summary.tokens_per_second:.0f} tok/s, TTFT p50 {summary.ttft_p50 * 1000:.2f} ms "
        f"p99 {summary.ttft_p99 * 1000:.2f} ms")
    if summary.errors:
        first_error = next(r.error for r in run.records if r.error)
        say(f"    first error: {first_error}")
    return row


def start_litellm_in_front(ctx: BenchContext, processes: ProcessSet, log_dir: Path, model: str,
                           api_base: str) -> tuple[ManagedProcess, str]:
    """LiteLLM's proxy serving ``model`` from the OpenAI-compatible server at ``api_base`` (…/v1)."""
    assert ctx.litellm_bin is not None, "part (d) not selected"
    config = configs.write_yaml(log_dir / "litellm.yaml", configs.litellm_proxy(model, api_base))
    log_config = configs.write_yaml(log_dir / "litellm-logging.yaml", configs.quiet_access_log())
    return start_litellm_proxy(processes, ctx.litellm_bin, config, model, log_config_path=log_config)
