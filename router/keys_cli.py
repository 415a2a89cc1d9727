"""``fleetgate keys create --name NAME | list | revoke ID_OR_NAME``: manage API keys in the config's Redis.

``create`` prints the new key once (it is stored only as a hash); ``list`` shows
id, name, creation time and revocation, never a secret or hash; ``revoke`` takes
a key id or the name of an active key.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import datetime, timezone

import redis.asyncio as aioredis

from fleetgate.config import load_config
from router.auth import KeyInfo, KeyLookupError, KeyStore


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _table(keys: list[KeyInfo]) -> str:
    rows = [("ID", "NAME", "CREATED", "REVOKED")]
    rows += [(k.id, k.name, _when(k.created_at), _when(k.revoked_at) if k.revoked else "no") for k in keys]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


async def _run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    client = aioredis.from_url(config.redis_url)
    try:
        store = KeyStore(client)
        if args.keys_command == "create":
            try:
                secret, info = await store.create(args.name)
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
    finally:
        await client.aclose()
    return 2


def keys_cli(args: argparse.Namespace) -> int:
    return asyncio.run(_run(args))
