"""The ``fleetgate bench fair-share`` arguments (``cli.py`` adds them to its parser).

Kept free of heavy imports: the command line builds its parser from this module whichever subcommand runs.
"""

from __future__ import annotations

import argparse


def add_fair_share_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--replicas", type=int, default=2, help="sim replicas (default 2)")
    p.add_argument("--max-num-seqs", type=int, default=16,
                   help="each replica's batch bound: the router admits replicas x this (default 16)")
    p.add_argument("--heavy-streams", type=int, default=64, help="the heavy key's concurrent streams (default 64)")
    p.add_argument("--heavy-tokens", default="128-384",
                   help="the heavy streams' output tokens, uniform in LOW-HIGH (default 128-384)")
    p.add_argument("--seconds", type=float, default=60.0,
                   help="wall seconds each contended run is measured for (default 60; idle and heavy-alone "
                        "runs take a third and a half of it)")
    p.add_argument("--time-scale", type=float, default=3.0,
                   help="the sim's clock runs this many times slower than the model it stands for, so the "
                        "machine streams fewer tokens per second; latencies are reported in model time (default 3)")
    p.add_argument("--quick", action="store_true", help="smoke test: short windows and streams")
    p.add_argument("--out", default=None, help="directory for latest.md and latest.json "
                                               "(default loadtest/results/fair_share)")
    p.add_argument("--work-dir", default=None, help="process logs and generated configs (default a temp dir)")
