"""``fleetgate keys create | update | rotate | list | revoke | limit``: API keys in the config's Redis.

    fleetgate keys create --name NAME [settings]      prints the new key once (it is stored only as a hash)
    fleetgate keys update KEY [--name NAME] [settings]
    fleetgate keys rotate KEY                         prints a new secret once; the old one stops working at once
    fleetgate keys list [--format table|json]         never a secret or hash
    fleetgate keys revoke KEY
    fleetgate keys limit KEY [--rpm N] [--tpm N]      (update with only --rpm / --tpm)

KEY is a key id or the name of an active key. Settings: ``--rpm`` / ``--tpm``
(requests / tokens per minute; 0 or ``none``: the router's default,
``router.rate_limit_*_per_minute``), ``--role admin|user``, ``--owner TEXT`` (``""``
clears), ``--budget-{day,month}-{tokens,input-tokens,output-tokens} N`` (tokens per
UTC day / month; 0 or ``none``: unlimited), ``--models a,b`` (the allowlist; ``""``:
every model), ``--max-tokens N`` (0 or ``none``: no cap), ``--weight W`` (fair share),
``--priority P``, ``--server-tools`` / ``--no-server-tools`` (whether the server may run
tools for the key, off by default; see ``router/key_policy.py``). An option left out
leaves its setting as it is (on create: the default).

``list`` shows id, name, creation, revocation, the key's own rate limits
(``default``: the router's), role, owner, budgets (``tok/d=1M`` is 1,000,000 tokens
a day; ``in`` / ``out`` input / output tokens, ``mo`` a month; ``-``: none), the
model allowlist (``*``: every model) and the other settings that differ from their
defaults (``server_tools=on``: the key may use server-side tools); ``--format json``
prints every field as the admin API shows it.

Every change is appended to the audit log (``router/audit.py``) as
``cli:<user>@<host>``. A Redis that does not answer is one line on stderr naming
its URL (exit 1).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from fleetgate.core.config import FleetgateConfig, load_config
from fleetgate.router.audit import Actor, AuditLog
from fleetgate.router.auth import KeyInfo, KeyLookupError, KeyStore
from fleetgate.router.key_admin import BUDGET_NAMES, KeyAdmin, KeyPatch, key_view, settings_changes
from fleetgate.router.key_policy import BUDGET_KINDS, PERIODS, ROLES, KeyPolicy
from fleetgate.router.redis_reachability import unreachable_message

# A Redis that is not running refuses at once; one that vanished must not hang the command.
REDIS_TIMEOUT_SECONDS = 5.0
LIST_COLUMNS = ("ID", "NAME", "CREATED", "REVOKED", "RPM", "TPM", "ROLE", "OWNER", "BUDGETS", "MODELS", "OTHER")
_PERIOD_ABBREVIATIONS = {"day": "d", "month": "mo"}
_KIND_ABBREVIATIONS = {"tokens": "tok", "input_tokens": "in", "output_tokens": "out"}


# ------------------------------------------------------------------ arguments


def count_or_clear(text: str) -> int:
    """A positive number, or 0 / none to clear the setting (argparse type)."""
    if text.strip().lower() == "none":
        return 0
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, 0 or none, got {text!r}")
    return value


def add_limit_arguments(p: argparse.ArgumentParser) -> None:
    """``--rpm`` / ``--tpm``: a key's own rate limits."""
    p.add_argument("--rpm", type=count_or_clear, default=None,
                   help="requests per minute (0 or none: the router's default)")
    p.add_argument("--tpm", type=count_or_clear, default=None,
                   help="prompt + completion tokens per minute (0 or none: the router's default)")


def add_settings_arguments(p: argparse.ArgumentParser) -> None:
    """Every setting of a key but its name: rate limits, role, owner, budgets, allowlist, cap, weight, priority,
    server-side tools."""
    add_limit_arguments(p)
    p.add_argument("--role", choices=ROLES, default=None, help="admin may use the admin API (default user)")
    p.add_argument("--owner", default=None, help='a person or team, shown in listings ("" clears)')
    for period in PERIODS:
        for kind in BUDGET_KINDS:
            what = "input + output tokens" if kind == "tokens" else kind.replace("_", " ")
            p.add_argument(f"--budget-{period}-{kind.replace('_', '-')}", dest=f"budget_{period}_{kind}",
                           type=count_or_clear, default=None, metavar="N",
                           help=f"{what} per UTC {period} (0 or none: unlimited)")
    p.add_argument("--models", default=None, help='the models the key may call, comma-separated ("": every model)')
    p.add_argument("--max-tokens", type=count_or_clear, default=None,
                   help="cap on the completion tokens a request may ask for (0 or none: no cap)")
    p.add_argument("--weight", type=float, default=None, help="fair share under contention (default 1)")
    p.add_argument("--priority", type=int, default=None, help="engine priority, lower first (default 0)")
    p.add_argument("--server-tools", action=argparse.BooleanOptionalAction, default=None,
                   help="the server may run tools for the key: remote MCP servers, sandboxed python/bash, "
                        "web_search (default off)")


def patch_from(args: argparse.Namespace) -> KeyPatch:
    """The settings the command line gives (an option left out: None, unchanged)."""
    models = None if args.models is None else tuple(m.strip() for m in args.models.split(",") if m.strip())
    budgets = {name: value for name in BUDGET_NAMES if (value := getattr(args, f"budget_{name}")) is not None}
    return KeyPatch(
        name=getattr(args, "new_name", None), rpm=args.rpm, tpm=args.tpm, role=args.role, owner=args.owner,
        budgets=budgets, models=models, max_tokens=args.max_tokens, weight=args.weight, priority=args.priority,
        server_tools=args.server_tools,
    )


# ------------------------------------------------------------------ rendering


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _limit(value: int | None) -> str:
    return "default" if value is None else str(value)


def compact_count(value: int) -> str:
    """1000000 -> 1M, 250000 -> 250k, 1234 -> 1234 (exact: only whole thousands and millions are shortened)."""
    if value % 1_000_000 == 0:
        return f"{value // 1_000_000}M"
    if value % 1000 == 0:
        return f"{value // 1000}k"
    return str(value)


def _budgets(policy: KeyPolicy) -> str:
    parts = [f"{_KIND_ABBREVIATIONS[kind]}/{_PERIOD_ABBREVIATIONS[period]}={compact_count(tokens)}"
             for period, kind, tokens in policy.budgets.limits()]
    return ",".join(parts) or "-"


def _other(policy: KeyPolicy) -> str:
    defaults = KeyPolicy()
    parts = [f"max_tokens={policy.max_tokens}"] if policy.max_tokens is not None else []
    parts += [f"weight={policy.weight:g}"] if policy.weight != defaults.weight else []
    parts += [f"priority={policy.priority}"] if policy.priority != defaults.priority else []
    parts += ["server_tools=on"] if policy.server_tools else []
    return ",".join(parts) or "-"


def _row(k: KeyInfo) -> tuple[str, ...]:
    policy = k.policy
    return (k.id, k.name, _when(k.created_at), _when(k.revoked_at) if k.revoked else "no", _limit(k.limits.requests),
            _limit(k.limits.tokens), policy.role, policy.owner or "-", _budgets(policy), ",".join(policy.models) or "*",
            _other(policy))


def table(rows: list[tuple[str, ...]]) -> str:
    """Left-aligned columns, two spaces apart (the first row is the header)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def _cell(value: Any) -> str:
    """A setting's value in a change: ``-`` unset, ``""`` empty text, ``a,b`` a list (``[]`` empty)."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "[]"
    return str(value) if value != "" else '""'


def describe_changes(changes: dict[str, list[Any]]) -> str:
    """``role user -> admin, rpm - -> 5``."""
    return ", ".join(f"{name} {_cell(old)} -> {_cell(new)}" for name, (old, new) in changes.items()) or "no change"


# ------------------------------------------------------------------ running


async def with_redis(config: FleetgateConfig, run: Callable[[aioredis.Redis], Awaitable[int]]) -> int:
    """``run`` with a client of the config's Redis; a Redis that does not answer is one line on stderr, exit 1."""
    client = aioredis.from_url(
        config.redis_url, socket_connect_timeout=REDIS_TIMEOUT_SECONDS, socket_timeout=REDIS_TIMEOUT_SECONDS
    )
    try:
        return await run(client)
    except (RedisConnectionError, RedisTimeoutError, OSError):
        print(f"error: {unreachable_message(config.redis_url)}", file=sys.stderr)
        return 1
    finally:
        await client.aclose()


async def _run(args: argparse.Namespace) -> int:
    config = load_config(args.config)

    async def run(client: aioredis.Redis) -> int:
        store = KeyStore(client)
        admin = KeyAdmin(store, AuditLog(client, max_entries=config.router.audit_max_entries))
        try:
            return await _command(args, store, admin)
        except (KeyLookupError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1

    return await with_redis(config, run)


async def _command(args: argparse.Namespace, store: KeyStore, admin: KeyAdmin) -> int:
    actor = Actor.cli()
    command = args.keys_command
    if command == "create":
        secret, info = await admin.create(actor, args.name, patch_from(args))
        print(secret)
        print(f"created key {info.id} named {info.name!r} ({info.policy.role}); the key is shown only this once",
              file=sys.stderr)
        return 0
    if command == "rotate":
        secret, info = await admin.rotate(actor, args.key)
        print(secret)
        print(f"rotated key {info.id} ({info.name}): the old secret no longer works; the new one is shown only "
              "this once", file=sys.stderr)
        return 0
    if command == "list":
        keys = await store.list()
        if getattr(args, "format", "table") == "json":
            print(json.dumps([key_view(k) for k in keys], indent=2))
        else:
            print(table([LIST_COLUMNS, *(_row(k) for k in keys)]))
        return 0
    if command == "revoke":
        info = await admin.revoke(actor, args.key)
        print(f"revoked {info.id} ({info.name})")
        return 0
    if command == "limit" and args.rpm is None and args.tpm is None:
        print("error: give --rpm and/or --tpm (0 or none clears one)", file=sys.stderr)
        return 2
    if command == "limit":
        _, info = await admin.update(actor, args.key, KeyPatch(rpm=args.rpm, tpm=args.tpm))
        print(f"{info.id} ({info.name}): rpm {_limit(info.limits.requests)}, tpm {_limit(info.limits.tokens)}")
        return 0
    if command == "update" and patch_from(args) == KeyPatch():
        print("error: give at least one setting to change (see --help)", file=sys.stderr)
        return 2
    if command == "update":
        before, info = await admin.update(actor, args.key, patch_from(args))
        print(f"updated {info.id} ({info.name}): {describe_changes(settings_changes(before, info))}")
        return 0
    return 2


def keys_cli(args: argparse.Namespace) -> int:
    return asyncio.run(_run(args))
