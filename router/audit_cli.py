"""``fleetgate audit [--since WHEN] [--until WHEN] [--limit N] [--key ID] [--action A] [--format table|json]``.

Reads the audit log (``router/audit.py``) in the config's Redis, newest entry
first: when, who (an admin key's id and name, or ``cli:<user>@<host>``), the
action, the key changed and the settings it changed, and where the change came
from. ``--since`` / ``--until`` take a UTC day (``2026-12-01``; ``--until`` includes
the day), an ISO time or a duration ago (``30m``, ``12h``, ``7d``); ``--key`` keeps
the entries whose target or actor is that key id. ``json`` prints the entries as
the admin API's ``GET /v1/admin/audit`` does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable

import redis.asyncio as aioredis

from fleetgate.core.config import load_config
from fleetgate.router.audit import AuditEntry, AuditLog, iso_time, parse_time
from fleetgate.router.keys_cli import describe_changes, table, with_redis

DEFAULT_LIMIT = 50
COLUMNS = ("TIME", "ACTOR", "ACTION", "TARGET", "CHANGES", "CLIENT")


def _when(end_of_day: bool) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            return parse_time(text, end_of_day=end_of_day)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def add_audit_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--since", type=_when(False), default=None,
                   help="from this UTC day, ISO time or duration ago (30m, 12h, 7d); default: the beginning")
    p.add_argument("--until", type=_when(True), default=None, help="up to this UTC day (included) or time")
    p.add_argument("--limit", type=int, default=DEFAULT_LIMIT,
                   help=f"at most this many entries (default {DEFAULT_LIMIT})")
    p.add_argument("--key", default=None, help="only entries whose target or actor is this key id")
    p.add_argument("--action", default=None, help="only this action (key.create, key.update, key.revoke, ...)")
    p.add_argument("--format", choices=("table", "json"), default="table")


def _row(entry: AuditEntry) -> tuple[str, ...]:
    actor = entry.actor
    who = f"{actor.id} ({actor.name})" if actor.name else actor.id
    target = f"{entry.target} ({entry.target_name})" if entry.target_name else entry.target
    where = actor.client + (f" (x-forwarded-for: {actor.forwarded_for})" if actor.forwarded_for else "")
    return iso_time(entry.at), who, entry.action, target, describe_changes(entry.changes), where or "-"


def render(entries: list[AuditEntry], fmt: str) -> str:
    if fmt == "json":
        return json.dumps([e.to_json() for e in entries], indent=2)
    return table([COLUMNS, *(_row(e) for e in entries)])


async def _run(args: argparse.Namespace) -> int:
    config = load_config(args.config)

    async def run(client: aioredis.Redis) -> int:
        audit = AuditLog(client, max_entries=config.router.audit_max_entries)
        entries = await audit.read(since=args.since, until=args.until, limit=max(1, args.limit), key=args.key,
                                   action=args.action)
        print(render(entries, args.format))
        return 0

    return await with_redis(config, run)


def audit_cli(args: argparse.Namespace) -> int:
    return asyncio.run(_run(args))
