"""The ``fleetgate bench elastic`` arguments (``cli.py`` adds them to its parser).

Kept free of heavy imports: the command line builds its parser from this module whichever subcommand runs.
"""

from __future__ import annotations

import argparse


def add_elastic_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--replicas", type=int, default=3,
                   help="the fixed fleet's size, and the elastic fleet's max_replicas (default 3)")
    p.add_argument("--max-num-seqs", type=int, default=4, help="each sim replica's batch bound (default 4)")
    p.add_argument("--streams", type=int, default=12,
                   help="concurrent streams during the burst: replicas x max_num_seqs fills the fixed fleet "
                        "(default 12)")
    p.add_argument("--idle-before", type=float, default=10.0, help="idle seconds before the burst (default 10)")
    p.add_argument("--burst", type=float, default=30.0, help="seconds of burst (default 30)")
    p.add_argument("--idle-after", type=float, default=30.0, help="idle seconds after the burst (default 30)")
    p.add_argument("--idle-ttl", type=float, default=10.0,
                   help="the elastic fleet's scaling.idle_ttl_seconds (default 10)")
    p.add_argument("--quick", action="store_true", help="smoke test: short phases")
    p.add_argument("--out", default=None, help="directory for latest.md and latest.json "
                                               "(default loadtest/results/elastic)")
    p.add_argument("--work-dir", default=None, help="process logs and generated configs (default a temp dir)")
