"""PNG plots of a trace replay (matplotlib, headless): one figure per speed, and p2c's speed sweep.

A speed's figure: TTFT p50 / p90 / p99 per policy (log scale), engine cache hit
and predicted hit ratio per policy, load spread per policy with the 1.5× target.
``write_plots`` returns the file names it wrote, for the report to embed.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

from fleetgate.loadtest.bench.trace.results import TraceResults  # noqa: E402
from fleetgate.loadtest.bench.trace.verdicts import LOAD_SPREAD_MAX  # noqa: E402

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _zero_nan(value: float) -> float:
    return 0.0 if math.isnan(value) else value


def plot_speed(results: TraceResults, speed: float, out_dir: Path) -> str:
    runs = [r for r in results.runs if r.speed == speed]
    names = [r.policy for r in runs]
    positions = range(len(runs))
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for offset, (label, attr) in zip((-0.27, 0, 0.27), (("p50", "ttft_ms_p50"), ("p90", "ttft_ms_p90"),
                                                         ("p99", "ttft_ms_p99")), strict=True):
        axes[0].bar([p + offset for p in positions], [_zero_nan(getattr(r, attr)) for r in runs], 0.27, label=label)
    axes[0].set(title=f"TTFT, speed {speed:g}", ylabel="ms", yscale="log")
    axes[1].bar([p - 0.2 for p in positions], [_zero_nan(r.cache_hit_ratio) * 100 for r in runs], 0.4,
                label="engine cache hit")
    axes[1].bar([p + 0.2 for p in positions], [_zero_nan(r.predicted_hit_ratio) * 100 for r in runs], 0.4,
                label="router predicted")
    axes[1].set(title="prompt tokens from the cache", ylabel="%", ylim=(0, 100))
    axes[2].bar(list(positions), [_zero_nan(r.load_spread) for r in runs], color="tab:purple")
    axes[2].axhline(LOAD_SPREAD_MAX, color="tab:red", linestyle="--", label="target")
    axes[2].set(title="load spread (max / mean replica queue)", ylabel="×")
    for ax in axes:
        ax.set_xticks(list(positions), names)
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"trace replay: {results.replicas} sim replicas, {results.routers} routers, {results.dialect}")
    return _save(fig, out_dir, f"trace_speed_{speed:g}.png")


def plot_knee(results: TraceResults, out_dir: Path) -> str | None:
    sweep = sorted(results.knee_sweep, key=lambda r: r.speed)
    if not sweep:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    speeds = [r.speed for r in sweep]
    ax.plot(speeds, [r.ttft_ms_p90 for r in sweep], marker="o", label="p2c TTFT p90")
    ax.plot(speeds, [r.ttft_ms_p50 for r in sweep], marker=".", label="p2c TTFT p50")
    ax.axhline(results.knee_factor * sweep[0].ttft_ms_p90, color="tab:red", linestyle="--",
               label=f"{results.knee_factor:g}× light-load p90")
    if results.knee is not None:
        ax.axvline(results.knee, color="tab:gray", linestyle=":", label=f"knee {results.knee:g}")
    ax.set(title="p2c speed sweep", xlabel="speed", ylabel="ms", xscale="log", yscale="log")
    ax.set_xticks(speeds, [f"{s:g}" for s in speeds])
    ax.minorticks_off()
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, out_dir, "trace_knee.png")


def _save(fig: Figure, out_dir: Path, name: str) -> str:
    fig.tight_layout()
    fig.savefig(out_dir / name, dpi=110)
    plt.close(fig)
    return name


def write_plots(results: TraceResults, out_dir: Path) -> list[str]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [plot_speed(results, speed, out_dir) for speed in results.speeds]
    knee = plot_knee(results, out_dir)
    return written + ([knee] if knee else [])
