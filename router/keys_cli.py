"""``fleetgate keys create --name NAME [--rpm N] [--tpm N] | list | revoke KEY | limit KEY [--rpm N] [--tpm N]``.

API keys in the config's Redis. ``create`` prints the new key once (it is stored
only as a hash); ``list`` shows id, name, creation time, revocation and the key's
own rate limits (``default``: the router's), never a secret or hash; ``revoke``
and ``limit`` take a key id or the name of an active key. ``--rpm`` / ``--tpm``
set the key's requests / tokens per minute; 0 or ``none`` clears one, so the key
follows ``router.rate_limit_*_per_minute`` again (see ``router.rate_limit``).
A Redis that does not answer is one line on stderr naming its URL (exit 1).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from fleetgate.core.config import load_config
from fleetgate.router.auth import KeyInfo, KeyLookupError, KeyStore
from fleetgate.router.rate_limit import Limits
from fleetgate.router.redis_reachability import unreachable_message

# A Redis that is not running refuses at once; one that vanished must not hang the command.
REDIS_TIMEOUT_SECONDS = 5.0


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _limit(value: int | None) -> str:
    return "default" if value is None else str(value)


def _table(keys: list[KeyInfo]) -> str:
    rows = [("ID", "NAME", "CREATED", "REVOKED", "RPM", "TPM")]
    rows += [
        (k.id, k.name, _when(k.created_at), _when(k.revoked_at) if k.revoked else "no", _limit(k.limits.requests),
         _limit(k.limits.tokens))
        for k in keys
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)


async def _run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    client = aioredis.from_url(
        config.redis_url, socket_connect_timeout=REDIS_TIMEOUT_SECONDS, socket_timeout=REDIS_TIMEOUT_SECONDS
    )
    try:
        return await _command(args, KeyStore(client))
    except (RedisConnectionError, RedisTimeoutError, OSError):
        print(f"error: {unreachable_message(config.redis_url)}", file=sys.stderr)
        return 1
    finally:
        await client.aclose()


async def _command(args: argparse.Namespace, store: KeyStore) -> int:
    if args.keys_command == "create":
        try:
            secret, info = await store.create(args.name, Limits(args.rpm or None, args.tpm or None))
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(secret)
        print(f"created key {info.id} named {info.name!r}; the key is shown only this once", file=sys.stderr)
        return 0
    if args.keys_command == "list":
        print(_table(await store.list()))
        return 0
    if args.keys_command == "revoke":
        try:
            info = await store.revoke(args.key)
        except KeyLookupError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"revoked {info.id} ({info.name})")
        return 0
    if args.keys_command == "limit":
        if args.rpm is None and args.tpm is None:
            print("error: give --rpm and/or --tpm (0 or none clears one)", file=sys.stderr)
            return 2
        try:
            info = await store.set_limits(args.key, requests=args.rpm, tokens=args.tpm)
        except KeyLookupError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"{info.id} ({info.name}): rpm {_limit(info.limits.requests)}, tpm {_limit(info.limits.tokens)}")
        return 0
    return 2


def keys_cli(args: argparse.Namespace) -> int:
    return asyncio.run(_run(args))
