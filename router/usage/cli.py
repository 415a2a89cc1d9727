"""``fleetgate usage [--key KEY] [--model M] [--since DATE] [--until DATE] [--daily] [--format table|json|csv]``.

Reads the usage ledger (``router.usage.ledger``) in the config's Redis: by
default one row per key and model, summed from ``--since`` (default: the first
day of the current UTC month) to ``--until`` (default: today, UTC), both
included; ``--daily`` keeps one row per day. ``--key`` takes a key id or the
name of an active key. Rows show the key's id and name (never a secret),
requests, errors, client disconnects, input / cached input / output /
reasoning tokens, and average time to first token, duration and queue wait.
``json`` prints the rows as a list of objects (the admin API's shape), ``csv``
a header and one line per row. A Redis that does not answer is one line on
stderr naming its URL (exit 1).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, date, datetime

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from fleetgate.core.config import load_config
from fleetgate.router.auth import KeyLookupError, KeyStore
from fleetgate.router.redis_reachability import unreachable_message
from fleetgate.router.usage.ledger import UsageLedger
from fleetgate.router.usage.report import default_since, read_usage, render

REDIS_TIMEOUT_SECONDS = 5.0


def parse_day(text: str) -> date:
    """A ``YYYY-MM-DD`` day (UTC), for argparse."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a day as YYYY-MM-DD, got {text!r}") from None


async def _run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    today = datetime.now(UTC).date()
    since, until = args.since or default_since(today), args.until or today
    if since > until:
        print(f"error: --since {since} is after --until {until}", file=sys.stderr)
        return 2
    client = aioredis.from_url(
        config.redis_url, socket_connect_timeout=REDIS_TIMEOUT_SECONDS, socket_timeout=REDIS_TIMEOUT_SECONDS
    )
    ledger = UsageLedger(client, retention_days=config.router.usage.retention_days)
    try:
        rows = await read_usage(ledger, KeyStore(client), key=args.key, model=args.model, since=since, until=until,
                                daily=args.daily)
    except KeyLookupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (RedisConnectionError, RedisTimeoutError, OSError):
        print(f"error: {unreachable_message(config.redis_url)}", file=sys.stderr)
        return 1
    finally:
        await client.aclose()
    print(render(rows, args.format, daily=args.daily))
    return 0


def add_usage_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--key", default=None, help="only this key (its id, or the name of an active key)")
    p.add_argument("--model", default=None, help="only this model")
    p.add_argument("--since", type=parse_day, default=None,
                   help="first UTC day, YYYY-MM-DD (default: the first day of this month)")
    p.add_argument("--until", type=parse_day, default=None, help="last UTC day, YYYY-MM-DD (default: today)")
    p.add_argument("--daily", action="store_true", help="one row per day instead of per key and model")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")


def usage_cli(args: argparse.Namespace) -> int:
    return asyncio.run(_run(args))
