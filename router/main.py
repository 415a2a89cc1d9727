"""``fleetgate router [--config FILE] [--host H] [--port N]``: one router process on uvicorn (uvloop, httptools).

The config comes from ``--config`` (default ``deploy/local.yaml``) plus
``FLEETGATE_*`` environment overrides (``FLEETGATE_REDIS__URL`` ...); ``--host`` /
``--port`` override ``router.host`` / ``router.port``. Access logs are off (the
metrics count requests).

Before serving, the process tunes CPython's cyclic garbage collector
(``tune_gc``): every object startup made (modules, the app, the SDK and pydantic
schemas) is frozen out of the collector's reach, and the youngest generation is
collected after 20 000 net allocations instead of 700. Each request allocates
thousands of short-lived container objects, nearly all freed by reference
counting; collected every 700, they were traversed (and promoted, and traversed
again) while still alive. Measured in ``loadtest/README.md`` (performance);
the cost is memory: up to ~20 000 unreachable cyclic objects (a few MB) wait
longer for a collection.
"""

from __future__ import annotations

import argparse
import gc
import logging

import uvicorn

from fleetgate.core.config import load_config
from fleetgate.router.app import create_app

# Streams still open at shutdown get this long to finish.
GRACEFUL_SHUTDOWN_SECONDS = 10
# Net container allocations between two collections of the youngest generation (CPython's default: 700).
GC_GEN0_THRESHOLD = 20_000


def tune_gc() -> None:
    """Freeze startup's objects out of the collector's reach; collect the youngest generation less often."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


def run_router(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    host = args.host if getattr(args, "host", None) else config.router.host
    port = args.port if getattr(args, "port", None) is not None else config.router.port
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(config)
    tune_gc()
    uvicorn.run(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="info",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    return 0
