"""PNG plots of a benchmark run (matplotlib, headless): one figure per part that ran.

``write_plots`` returns the file names it wrote, for the report to embed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

from fleetgate.loadtest.bench.report import ROUTER_CPU_PER_REQUEST_MAX, ROUTER_CPU_PER_TOKEN_MAX  # noqa: E402
from fleetgate.loadtest.bench.results import BARE_RELAY, FLEETGATE, GRPC_DIRECT, LITELLM, BenchResults  # noqa: E402

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_COLORS = {GRPC_DIRECT: "tab:gray", BARE_RELAY: "tab:olive", FLEETGATE: "tab:blue", LITELLM: "tab:orange"}


def _save(fig: Figure, out_dir: Path, name: str) -> str:
    fig.tight_layout()
    fig.savefig(out_dir / name, dpi=110)
    plt.close(fig)
    return name


def plot_overhead_ttft(results: BenchResults, out_dir: Path) -> str | None:
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    drawn = False
    for target in (GRPC_DIRECT, BARE_RELAY, FLEETGATE, LITELLM):
        rows = sorted(results.select("a", target, label=""), key=lambda m: m.concurrency)
        if not rows:
            continue
        drawn = True
        xs = [m.concurrency for m in rows]
        for ax, attr in zip(axes, ("ttft_p50", "ttft_p99"), strict=True):
            ax.plot(xs, [getattr(m.summary, attr) * 1000 for m in rows], marker="o", label=target,
                    color=_COLORS[target])
    if not drawn:
        plt.close(fig)
        return None
    for ax, title in zip(axes, ("TTFT p50", "TTFT p99"), strict=True):
        ax.set(title=f"(a) {title}, zero-latency sim", xlabel="concurrency", ylabel="ms", xscale="symlog",
               yscale="log")
        ax.grid(True, alpha=0.3)
        ax.legend()
    return _save(fig, out_dir, "overhead_ttft.png")


def plot_overhead_cpu(results: BenchResults, out_dir: Path) -> str | None:
    targets = [t for t in (BARE_RELAY, FLEETGATE, LITELLM) if results.select("a", t, label="")]
    if not targets:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    width = 0.8 / len(targets)
    for i, target in enumerate(targets):
        rows = sorted(results.select("a", target, label=""), key=lambda m: m.concurrency)
        positions = [j + i * width for j in range(len(rows))]
        axes[0].bar(positions, [(m.summary.cpu_per_token or 0) * 1e6 for m in rows], width, label=target,
                    color=_COLORS[target])
        axes[1].bar(positions, [(m.summary.cpu_per_request or 0) * 1e3 for m in rows], width, label=target,
                    color=_COLORS[target])
        labels = [str(m.concurrency) for m in rows]
    for ax, limit, title, unit in ((axes[0], ROUTER_CPU_PER_TOKEN_MAX * 1e6, "CPU per streamed token", "µs"),
                                   (axes[1], ROUTER_CPU_PER_REQUEST_MAX * 1e3, "CPU per request", "ms")):
        ax.axhline(limit, color="tab:red", linestyle="--", label="router target")
        ax.set_xticks([j + width * (len(targets) - 1) / 2 for j in range(len(labels))], labels)
        ax.set(title=f"(a) {title} (all work / units)", xlabel="concurrency", ylabel=unit)
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend()
    return _save(fig, out_dir, "overhead_cpu.png")


def plot_end_to_end(results: BenchResults, out_dir: Path) -> str | None:
    rows = results.select("b")
    if not rows:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    names = [m.target for m in rows]
    colors = [_COLORS.get(name, "tab:green") for name in names]
    axes[0].bar(names, [m.summary.tokens_per_second for m in rows], color=colors)
    axes[0].set(title="(b) output tokens/s (vLLM CPU)", ylabel="tokens/s")
    positions = range(len(rows))
    axes[1].bar([p - 0.2 for p in positions], [m.summary.ttft_p50 * 1000 for m in rows], 0.4, label="p50")
    axes[1].bar([p + 0.2 for p in positions], [m.summary.ttft_p99 * 1000 for m in rows], 0.4, label="p99")
    axes[1].set_xticks(list(positions), names)
    axes[1].set(title="(b) TTFT", ylabel="ms")
    axes[1].legend()
    for ax in axes:
        ax.grid(True, axis="y", alpha=0.3)
        ax.tick_params(axis="x", labelsize=8)
    return _save(fig, out_dir, "end_to_end.png")


def plot_scale_out(results: BenchResults, out_dir: Path) -> str | None:
    rows = results.select("c")
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.bar([m.label for m in rows], [m.summary.tokens_per_second for m in rows], color="tab:blue")
    ax.set(title=f"(c) scale-out, concurrency {rows[0].concurrency}", ylabel="output tokens/s")
    ax.grid(True, axis="y", alpha=0.3)
    ax.tick_params(axis="x", labelsize=8)
    return _save(fig, out_dir, "scale_out.png")


def write_plots(results: BenchResults, out_dir: Path) -> list[str]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [plot(results, out_dir) for plot in (plot_overhead_ttft, plot_overhead_cpu, plot_end_to_end,
                                                   plot_scale_out)]
    return [name for name in written if name]
