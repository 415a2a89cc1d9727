"""``fleetgate router [--config FILE] [--host H] [--port N]``: one router process on uvicorn (uvloop, httptools).

The config comes from ``--config`` (default ``deploy/local.yaml``) plus
``FLEETGATE_*`` environment overrides (``FLEETGATE_REDIS__URL`` ...); ``--host`` /
``--port`` override ``router.host`` / ``router.port``. Access logs are off (the
metrics count requests).
"""

from __future__ import annotations

import argparse
import logging

import uvicorn

from fleetgate.config import load_config
from router.app import create_app

# Streams still open at shutdown get this long to finish.
GRACEFUL_SHUTDOWN_SECONDS = 10


def run_router(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    host = args.host if getattr(args, "host", None) else config.router.host
    port = args.port if getattr(args, "port", None) is not None else config.router.port
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(
        create_app(config),
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="info",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    return 0
