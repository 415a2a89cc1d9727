"""``fleetgate bench``: run the selected parts one after the other and write the report, JSON and plots.

    fleetgate bench [--quick] [--parts a,b,c,d,e] [--out loadtest/results] [--work-dir DIR]

(the arguments are declared in ``fleetgate/launcher/cli.py``, which imports this module only for ``bench``)

(a) router overhead, (b) end to end on vLLM CPU, (c) scale-out, (d) LiteLLM's
proxy measured inside (a) and (b), (e) prefix routing against power-of-two on
two vLLM CPU replicas (not in the default set; it also writes
loadtest/results/prefix_vllm/). A part that fails is noted in the report and
the others still run; every process a part started is stopped when it ends,
also on Ctrl-C or SIGTERM. Results are written after every part.
"""

from __future__ import annotations

import argparse
import datetime
import signal
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path

from fleetgate.loadtest.bench.litellm_venv import ensure_litellm
from fleetgate.loadtest.bench.machine import describe_machine
from fleetgate.loadtest.bench.parts.common import BenchContext, say
from fleetgate.loadtest.bench.parts.e2e import run_end_to_end
from fleetgate.loadtest.bench.parts.overhead import run_overhead
from fleetgate.loadtest.bench.parts.prefix_vllm import run_prefix_routing_vllm
from fleetgate.loadtest.bench.parts.scaleout import run_scale_out
from fleetgate.loadtest.bench.plots import write_plots
from fleetgate.loadtest.bench.processes import REPO, ProcessFailed
from fleetgate.loadtest.bench.report import render_markdown
from fleetgate.loadtest.bench.results import BenchResults

ALL_PARTS = ("a", "b", "c", "d", "e")
DEFAULT_OUT = REPO / "loadtest" / "results"
PART_RUNNERS: dict[str, Callable[[BenchContext], None]] = {
    "a": run_overhead, "b": run_end_to_end, "c": run_scale_out, "e": run_prefix_routing_vllm,
}


def parse_parts(text: str) -> list[str]:
    parts = [p.strip().lower() for p in text.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(ALL_PARTS))
    if unknown:
        raise ValueError(f"unknown part(s) {unknown}; choose from {', '.join(ALL_PARTS)}")
    if "d" in parts and not {"a", "b"} & set(parts):
        raise ValueError("part d measures LiteLLM inside parts a and b: add a and/or b")
    return [p for p in ALL_PARTS if p in parts]


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def write_outputs(results: BenchResults, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    results.save(out_dir / "latest.json")
    plots = write_plots(results, out_dir)
    report = out_dir / "latest.md"
    report.write_text(render_markdown(results, plots))
    return report


def run_bench(args: argparse.Namespace) -> int:
    try:
        parts = parse_parts(args.parts)
    except ValueError as exc:
        print(f"fleetgate bench: {exc}")
        return 2
    out_dir = Path(args.out or DEFAULT_OUT).resolve()
    work_dir = Path(args.work_dir or tempfile.mkdtemp(prefix="fleetgate-bench-")).resolve()
    # SIGTERM unwinds like Ctrl-C, so every ProcessSet stops what it started.
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    results = BenchResults(machine=describe_machine(), quick=args.quick,
                           started_at=datetime.datetime.now().astimezone().isoformat(timespec="seconds"))
    ctx = BenchContext(quick=args.quick, work_dir=work_dir, results=results)
    say(f"parts {', '.join(parts)}{' (quick)' if args.quick else ''}; logs and configs in {work_dir}")
    if "d" in parts:
        try:
            ctx.litellm_bin = ensure_litellm()
        except Exception as exc:  # noqa: BLE001 - a missing peer must not stop fleetgate's own parts
            results.notes.append(f"part d skipped: LiteLLM could not be installed ({exc})")
            say(results.notes[-1])
    failed = False
    for part in parts:
        runner = PART_RUNNERS.get(part)
        if runner is None:
            continue
        try:
            runner(ctx)
        except (ProcessFailed, OSError, RuntimeError, ValueError) as exc:
            failed = True
            results.notes.append(f"part {part} failed: {exc}".split("\n")[0] + f" (logs in {ctx.log_dir(part)})")
            say(f"part {part} failed:\n{exc}")
            traceback.print_exc()
        write_outputs(results, out_dir)
    say(f"report: {write_outputs(results, out_dir)}")
    return 1 if failed else 0
