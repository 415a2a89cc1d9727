"""The audit log as the CLI writes and reads it, the stream's bounds and filters, and key changes under
concurrency (rotation and updates are atomic), against the session's real Redis.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from typing import Any

import redis
import redis.asyncio as aioredis

from fleetgate.router.audit import AUDIT_STREAM, Actor, AuditEntry, AuditLog, parse_time
from fleetgate.router.auth import KEY_ID_PREFIX, KEY_RECORD_PREFIX, KeyStore
from fleetgate.router.key_admin import KeyAdmin, KeyPatch
from keys_helpers import create_key, keys_cli
from router_process import REPO, ROUTER_CONFIG


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}"


def audit_cli(redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FLEETGATE_REDIS__URL": redis_url}
    return subprocess.run([sys.executable, "-m", "fleetgate.launcher.cli", "audit", "--config", str(ROUTER_CONFIG),
                           *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)


def key_id(redis_url: str, name: str) -> str:
    keys = json.loads(keys_cli(redis_url, "list", "--format", "json").stdout)
    found: str = next(k["id"] for k in reversed(keys) if k["name"] == name)
    return found


def test_cli_changes_are_audited_and_fleetgate_audit_reads_them(redis_server) -> None:
    url = redis_server.url
    started = time.time()
    name = unique("cli-audit")
    secret = create_key(url, name, "--role", "admin", "--owner", "ops", "--budget-month-tokens", "2000000",
                        "--models", "rt-sim,rt-echo", "--max-tokens", "256", "--rpm", "10")
    kid = key_id(url, name)
    updated = keys_cli(url, "update", name, "--name", name + "-2", "--role", "user", "--budget-month-tokens", "0",
                       "--budget-day-output-tokens", "none", "--budget-day-input-tokens", "5000", "--models", "",
                       "--weight", "3", "--priority", "-2", "--owner", "")
    assert updated.returncode == 0, updated.stderr
    assert updated.stdout.startswith(f"updated {kid} ({name}-2): ")
    assert "role admin -> user" in updated.stdout and "budgets.month_tokens 2000000 -> -" in updated.stdout
    assert keys_cli(url, "limit", kid, "--tpm", "777").returncode == 0
    rotated = keys_cli(url, "rotate", kid)
    assert rotated.returncode == 0 and rotated.stdout.strip() != secret and "shown only this once" in rotated.stderr
    new_secret = rotated.stdout.strip()
    assert keys_cli(url, "revoke", kid).returncode == 0

    # The listing shows role, owner, budgets, allowlist and the rest compactly.
    header, *rows = keys_cli(url, "list").stdout.splitlines()
    assert header.split() == ["ID", "NAME", "CREATED", "REVOKED", "RPM", "TPM", "ROLE", "OWNER", "BUDGETS", "MODELS",
                              "OTHER"]
    (row,) = [r.split() for r in rows if r.startswith(kid)]
    assert row[4:] == ["10", "777", "user", "-", "in/d=5k", "*", "max_tokens=256,weight=3,priority=-2"]

    result = audit_cli(url, "--key", kid, "--format", "json")
    assert result.returncode == 0, result.stderr
    entries = json.loads(result.stdout)
    assert [e["action"] for e in entries] == ["key.revoke", "key.rotate", "key.update", "key.update", "key.create"]
    who = f"cli:{getpass.getuser()}@{socket.gethostname()}"
    for entry in entries:
        assert (entry["actor"], entry["actor_name"], entry["via"], entry["client"]) == (who, "", "cli", "")
        assert entry["target"] == kid and started - 1 <= entry["at"] <= time.time() + 1
    revoke, rotate, limit, update, create = entries
    assert create["target_name"] == name and create["changes"]["role"] == [None, "admin"]
    assert create["changes"]["budgets.month_tokens"] == [None, 2000000] and create["changes"]["rpm"] == [None, 10]
    assert update["changes"] == {
        "name": [name, name + "-2"], "role": ["admin", "user"], "owner": ["ops", ""],
        "budgets.day_input_tokens": [None, 5000], "budgets.month_tokens": [2000000, None],
        "models": [["rt-sim", "rt-echo"], []], "weight": [1.0, 3.0], "priority": [0, -2],
    }
    assert limit["changes"] == {"tpm": [None, 777]} and list(rotate["changes"]) == ["rotated_at"]
    assert revoke["changes"] == {"revoked": [False, True]}

    # The table: newest first, with who and what; --limit, --action, --since.
    table = audit_cli(url, "--key", kid).stdout.splitlines()
    assert table[0].split() == ["TIME", "ACTOR", "ACTION", "TARGET", "CHANGES", "CLIENT"]
    assert [line.split()[2] for line in table[1:]] == [e["action"] for e in entries]
    assert who in table[1] and "revoked false -> true" in table[1]
    assert len(json.loads(audit_cli(url, "--key", kid, "--limit", "2", "--format", "json").stdout)) == 2
    creates = json.loads(audit_cli(url, "--key", kid, "--action", "key.create", "--format", "json").stdout)
    assert [e["id"] for e in creates] == [create["id"]]
    assert json.loads(audit_cli(url, "--key", kid, "--since", "1h", "--format", "json").stdout) == entries
    assert json.loads(audit_cli(url, "--key", kid, "--until", "2020-01-01", "--format", "json").stdout) == []
    bad = audit_cli(url, "--since", "yesterday-ish")
    assert bad.returncode == 2 and "duration ago" in bad.stderr

    # No secret in the stream.
    stream = repr(redis.Redis.from_url(url).xrange(AUDIT_STREAM))
    assert secret not in stream and new_secret not in stream and secret.removeprefix("sk-fg-") not in stream


def test_stream_is_capped_and_read_in_time_order(redis_server) -> None:
    async def run() -> None:
        client = aioredis.from_url(redis_server.url)
        stream = f"{AUDIT_STREAM}-cap-{uuid.uuid4().hex[:6]}"
        audit = AuditLog(client, max_entries=50, stream=stream)
        try:
            actor = Actor(id="cli:test@host", via="cli")
            for i in range(1200):
                await audit.append(AuditEntry(actor=actor, action="key.update", target=f"key_{i % 3}",
                                              changes={"priority": [i, i + 1]}))
            length = await client.xlen(stream)
            # MAXLEN ~ trims whole stream nodes (100 entries by default): about 50 are kept, never all.
            assert 50 <= length <= 250
            newest = await audit.read(limit=10)
            assert [e.changes["priority"][0] for e in newest] == list(range(1199, 1189, -1))
            # A filter reads across batches until it has its limit (key_1 is every third entry).
            of_one = await audit.read(limit=20, key="key_1")
            assert len(of_one) == 20 and {e.target for e in of_one} == {"key_1"}
            everything = await audit.read(limit=10_000)
            assert len(everything) == length
            middle = everything[len(everything) // 2].at
            assert all(e.at >= middle for e in await audit.read(since=middle, limit=10_000))
        finally:
            await client.delete(stream)
            await client.aclose()

    asyncio.run(run())


def test_parse_time_forms() -> None:
    now = 1_800_000_000.0
    assert parse_time("2026-12-01") == 1_796_083_200.0
    assert parse_time("2026-12-01", end_of_day=True) == 1_796_083_200.0 + 86_400
    assert parse_time("2026-12-01T01:00:00Z") == 1_796_083_200.0 + 3600
    assert parse_time("2026-12-01T03:00:00+02:00") == 1_796_083_200.0 + 3600
    assert parse_time("30m", now=now) == now - 1800 and parse_time("7d", now=now) == now - 7 * 86_400
    for bad in ("", "yesterday", "5y", "2026-13-01"):
        try:
            parse_time(bad)
        except ValueError as exc:
            assert "duration ago" in str(exc)
        else:
            raise AssertionError(bad)


def test_rotation_and_updates_are_atomic_under_concurrency(redis_server) -> None:
    async def run() -> None:
        client = aioredis.from_url(redis_server.url)
        store = KeyStore(client)
        admin = KeyAdmin(store, AuditLog(client, max_entries=100_000))
        actor = Actor(id="cli:test@host", via="cli")
        first, info = await admin.create(actor, unique("atomic"), KeyPatch(rpm=5))

        # Eight rotations at once: each gets a secret, only the last one applied works, one record remains.
        results = await asyncio.gather(*(store.rotate(info.id) for _ in range(8)))
        working = [s for s, _ in results if await store.lookup(s) is not None]
        assert len(working) == 1 and await store.lookup(first) is None
        digest = (await client.get(KEY_ID_PREFIX + info.id)).decode()
        records: list[Any] = [k async for k in client.scan_iter(match=KEY_RECORD_PREFIX + "*", count=1000)
                              if (await client.hget(k, "id")) == info.id.encode()]
        assert records == [(KEY_RECORD_PREFIX + digest).encode()]
        current = await store.lookup(working[0])
        assert current is not None and current.id == info.id and current.limits.requests == 5

        # Updates of different settings at once (while the key rotates) all land.
        patches = [KeyPatch(priority=7), KeyPatch(weight=4.0), KeyPatch(owner="team-z"), KeyPatch(tpm=900),
                   KeyPatch(budgets={"day_tokens": 1234}), KeyPatch(models=("rt-sim",)), KeyPatch(max_tokens=99)]
        await asyncio.gather(*(admin.update(actor, info.id, p) for p in patches), store.rotate(info.id))
        final = await store.get(info.id)
        assert final is not None
        policy = final.policy
        assert (policy.priority, policy.weight, policy.owner, final.limits.tokens, final.limits.requests) == (
            7, 4.0, "team-z", 900, 5)
        assert (policy.budgets.day_tokens, policy.models, policy.max_tokens) == (1234, ("rt-sim",), 99)
        await client.aclose()

    asyncio.run(run())
