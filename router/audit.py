"""The audit log: every change made to the API keys, by the admin API, the CLI or a router's bootstrap key.

One Redis stream, ``fleetgate:audit``, appended with ``XADD … MAXLEN ~ N``
(``router.audit_max_entries``: Redis trims whole macro nodes, so it holds about
N entries, a few more at times). When a change happened is its entry's id, which
Redis assigns (milliseconds since the epoch by Redis's clock, then a sequence
number): one clock for every router and CLI, entries in the order they were made,
``since`` / ``until`` read as id ranges. Each entry's fields:

- ``actor``: who — the admin key's id (``via: api``), ``cli:<user>@<host>`` (``via: cli``),
  ``router:<host>`` (``via: router``: a router registering its bootstrap key);
  ``actor_name``: that key's name (empty otherwise);
- ``action``: ``key.create``, ``key.update``, ``key.revoke``, ``key.rotate``, ``key.bootstrap``;
- ``target`` / ``target_name``: the key id and name changed;
- ``changes``: JSON ``{setting: [before, after]}`` of the settings that changed (a create: from ``null``;
  a revoke: ``revoked``; a rotate: ``rotated_at``) — never a secret or a hash;
- ``client``: the address the request came from as the router's HTTP server saw it (uvicorn puts the
  ``X-Forwarded-For`` client there only when the connection comes from an address in its
  ``FORWARDED_ALLOW_IPS``, by default ``127.0.0.1,::1``; empty for the CLI);
  ``forwarded_for``: the request's ``X-Forwarded-For`` header as sent, unverified (a claim, not an address).

Reads (listing keys, usage, the audit log itself) are not recorded: a dashboard polling usage would
push the changes out of a capped stream. Nor are refused requests (a user key on an admin route gets
403 and writes nothing), so no caller without the admin role can push entries out either.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import socket
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import redis.asyncio as aioredis

AUDIT_STREAM = "fleetgate:audit"
Via = Literal["api", "cli", "router"]
# An X-Forwarded-For header is recorded up to this many characters.
MAX_FORWARDED_CHARS = 200
# Entries fetched per round trip while filtering.
READ_BATCH = 500

_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}


@dataclass(frozen=True)
class Actor:
    """Who makes a change, and from where."""

    id: str
    via: Via
    name: str = ""
    client: str = ""
    forwarded_for: str = ""

    @classmethod
    def cli(cls) -> Actor:
        """The user running ``fleetgate`` on this host: ``cli:<user>@<host>``."""
        try:
            user = getpass.getuser()
        except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER (some containers)
            user = f"uid{os.getuid()}"
        return cls(id=f"cli:{user}@{socket.gethostname()}", via="cli")

    @classmethod
    def router(cls) -> Actor:
        return cls(id=f"router:{socket.gethostname()}", via="router")


@dataclass(frozen=True)
class AuditEntry:
    actor: Actor
    action: str
    target: str
    target_name: str = ""
    changes: dict[str, list[Any]] = field(default_factory=dict)
    # The stream entry's id once appended ("<ms>-<seq>"): when it happened.
    id: str = ""

    @property
    def at(self) -> float:
        """Unix seconds of the entry's id (0 before it is appended)."""
        return int(self.id.partition("-")[0]) / 1000 if self.id else 0.0

    def fields(self) -> dict[str, str]:
        """The stream entry's fields."""
        return {
            "actor": self.actor.id, "actor_name": self.actor.name,
            "via": self.actor.via, "action": self.action, "target": self.target, "target_name": self.target_name,
            "changes": json.dumps(self.changes), "client": self.actor.client,
            "forwarded_for": self.actor.forwarded_for[:MAX_FORWARDED_CHARS],
        }

    @classmethod
    def from_stream(cls, entry_id: str, record: dict[str, str]) -> AuditEntry:
        actor = Actor(id=record.get("actor", ""), via=_via(record.get("via", "")),
                      name=record.get("actor_name", ""), client=record.get("client", ""),
                      forwarded_for=record.get("forwarded_for", ""))
        return cls(actor=actor, action=record.get("action", ""), target=record.get("target", ""),
                   target_name=record.get("target_name", ""), changes=json.loads(record.get("changes") or "{}"),
                   id=entry_id)

    def matches(self, key: str | None, action: str | None) -> bool:
        """Whether the key id ``key`` is this entry's target or actor, and ``action`` its action (None: any)."""
        return (key is None or key in (self.target, self.actor.id)) and (action is None or self.action == action)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "at": self.at, "time": iso_time(self.at), "actor": self.actor.id,
            "actor_name": self.actor.name, "via": self.actor.via, "action": self.action, "target": self.target,
            "target_name": self.target_name, "changes": self.changes, "client": self.actor.client,
            "forwarded_for": self.actor.forwarded_for,
        }


def _via(text: str) -> Via:
    if text == "cli":
        return "cli"
    if text == "router":
        return "router"
    return "api"


def iso_time(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str, *, now: float | None = None, end_of_day: bool = False) -> float:
    """A point in time from ``2026-12-01`` (UTC midnight; with ``end_of_day``, the end of that day), an ISO
    8601 time (UTC unless it says otherwise), or a duration ago (``90s``, ``30m``, ``12h``, ``7d``, ``2w``);
    a ValueError naming the forms otherwise."""
    text = text.strip()
    relative = _RELATIVE.match(text)
    if relative:
        return (time.time() if now is None else now) - int(relative[1]) * _UNIT_SECONDS[relative[2]]
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return (start + timedelta(days=1) if end_of_day else start).timestamp()
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"expected a date (2026-12-01), an ISO time (2026-12-01T09:30Z) or a duration ago "
                         f"(30m, 12h, 7d), got {text!r}") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class AuditLog:
    """Appends to and reads the audit stream (see the module docstring)."""

    def __init__(self, redis: aioredis.Redis, *, max_entries: int, stream: str = AUDIT_STREAM) -> None:
        self.redis = redis
        self.max_entries = max_entries
        self.stream = stream

    async def append(self, entry: AuditEntry) -> str:
        """Add ``entry``; its stream id."""
        entry_id = await self.redis.xadd(self.stream, entry.fields(),  # type: ignore[arg-type]
                                         maxlen=self.max_entries, approximate=True)
        return _text(entry_id)

    async def read(
        self, *, since: float | None = None, until: float | None = None, limit: int = 100, key: str | None = None,
        action: str | None = None,
    ) -> list[AuditEntry]:
        """Up to ``limit`` entries between ``since`` and ``until`` (Unix seconds, both included), newest first;
        only those whose target or actor is the key id ``key`` and whose action is ``action``, when given."""
        low = f"{round(since * 1000)}-0" if since is not None else "-"
        high: str = f"{round(until * 1000)}-{2 ** 64 - 1}" if until is not None else "+"
        found: list[AuditEntry] = []
        while len(found) < limit:
            batch = await self.redis.xrevrange(self.stream, max=high, min=low, count=READ_BATCH)
            if not batch:
                break
            for raw_id, raw in batch:
                if raw_id is None or raw is None:
                    continue
                entry = AuditEntry.from_stream(_text(raw_id), {_text(k): _text(v) for k, v in raw.items()})
                if entry.matches(key, action):
                    found.append(entry)
                    if len(found) == limit:
                        break
            if len(batch) < READ_BATCH:
                break
            last_id = batch[-1][0]
            if last_id is None:
                break
            high = "(" + _text(last_id)
        return found
