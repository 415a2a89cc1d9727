"""The ``fleetgate bench trace`` arguments (``cli.py`` adds them to its parser) and their parsing.

Kept free of heavy imports: the command line builds its parser from this module
whichever subcommand runs.
"""

from __future__ import annotations

import argparse

# Command-line policy names -> router.routing_policy.
POLICY_SETTINGS = {"random": "random", "p2c": "power_of_two", "power_of_two": "power_of_two", "prefix": "prefix",
                   "oracle": "oracle"}
DEFAULT_POLICIES = "random,p2c,prefix,oracle"
DEFAULT_KNEE_SPEEDS = "0.25,0.5,1,2,3,4,6,8"
# --quick: a smoke run of a few seconds per policy.
QUICK_DURATION_S = 15.0
QUICK_LIMIT = 40
QUICK_KNEE_WINDOW_S = 8.0


def add_trace_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trace", required=True, help="Mooncake-format JSONL (timestamp ms, input_length, "
                                                  "output_length, hash_ids of 512-token blocks)")
    p.add_argument("--replicas", type=int, default=8, help="sim replicas (default 8)")
    p.add_argument("--routers", type=int, default=2, help="router processes, requests spread round-robin (default 2)")
    p.add_argument("--speed", default="1", help="arrival-time speed-up; a comma-separated list runs every policy at "
                                                "each (default 1)")
    p.add_argument("--policies", default=DEFAULT_POLICIES, help=f"comma-separated (default {DEFAULT_POLICIES})")
    p.add_argument("--dialect", default="chat", choices=("chat", "messages", "responses"))
    p.add_argument("--duration", type=float, default=60.0,
                   help="seconds of trace time to replay from --start (default 60; 0: to the end)")
    p.add_argument("--start", type=float, default=0.0, help="trace second the window begins at (default 0)")
    p.add_argument("--limit", type=int, default=None, help="at most this many requests per run")
    p.add_argument("--quick", action="store_true",
                   help=f"smoke test: {QUICK_DURATION_S:g} s of trace, at most {QUICK_LIMIT} requests per run")
    p.add_argument("--find-knee", action="store_true",
                   help="first sweep p2c over --knee-speeds (each for --knee-window wall seconds) to the speed where "
                        "its TTFT p90 first exceeds --knee-factor times the slowest speed's, then run the policies "
                        "there")
    p.add_argument("--knee-speeds", default=DEFAULT_KNEE_SPEEDS, help=f"default {DEFAULT_KNEE_SPEEDS}")
    p.add_argument("--knee-window", type=float, default=20.0, help="wall seconds per sweep step (default 20)")
    p.add_argument("--knee-factor", type=float, default=4.0, help="default 4")
    p.add_argument("--drain-timeout", type=float, default=120.0,
                   help="seconds to wait for open requests after the last is sent (default 120)")
    p.add_argument("--prefill-ms-per-1k", type=float, default=None, help="sim prefill per 1k uncached tokens (50)")
    p.add_argument("--itl-ms", type=float, default=None, help="sim decode step (15)")
    p.add_argument("--max-num-seqs", type=int, default=None, help="sim running sequences per replica (128)")
    p.add_argument("--kv-cache-tokens", type=int, default=None, help="sim KV cache per replica in tokens (262144)")
    p.add_argument("--time-scale", type=float, default=1.0,
                   help="dilate the sim's clock this many times and replay that much slower (latencies reported "
                        "in the model's time): fewer tokens per wall second on a small machine (default 1)")
    p.add_argument("--out", default=None, help="directory for latest.md, latest.json, PNGs "
                                               "(default loadtest/results/trace)")
    p.add_argument("--work-dir", default=None, help="process logs and generated configs (default a temp dir)")


def parse_speeds(text: str) -> list[float]:
    speeds = [float(s) for s in text.split(",") if s.strip()]
    if not speeds or any(s <= 0 for s in speeds):
        raise ValueError(f"speeds must be positive numbers, got {text!r}")
    return speeds


def parse_policies(text: str) -> list[str]:
    policies = [p.strip().lower() for p in text.split(",") if p.strip()]
    unknown = sorted(set(policies) - set(POLICY_SETTINGS))
    if unknown or not policies:
        raise ValueError(f"unknown policies {unknown}; choose from {', '.join(POLICY_SETTINGS)}")
    return list(dict.fromkeys(policies))
