"""API keys: the ``fleetgate keys`` CLI, and two router processes (auth on) that honour the same keys in one Redis."""

from __future__ import annotations

import json
import uuid

import httpx
import openai
import pytest
import redis

from fleetgate.router.auth import KEY_ID_PREFIX, KEY_RECORD_PREFIX
from keys_helpers import create_key, keys_cli, listed
from router_process import RouterProcess, router_cluster, router_factory  # noqa: F401

HELLO = [{"role": "user", "content": "hi"}]
AUTH_ON = {"FLEETGATE_ROUTER__AUTH": "true"}


def record_of(redis_url: str, name: str) -> dict[str, str]:
    """The stored record (a hash) of the active key with this name."""
    keys = json.loads(keys_cli(redis_url, "list", "--format", "json").stdout)
    key_id = next(k["id"] for k in reversed(keys) if k["name"] == name)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        digest = client.get(KEY_ID_PREFIX + key_id)
        record: dict[str, str] = client.hgetall(KEY_RECORD_PREFIX + digest)
        return record
    finally:
        client.close()


def chat_ok(router: RouterProcess, key: str) -> bool:
    try:
        router.openai(api_key=key).chat.completions.create(model="rt-sim", messages=HELLO)
        return True
    except openai.AuthenticationError:
        return False


def test_keys_cli_create_list_revoke(redis_server) -> None:
    secret = create_key(redis_server.url, "cli-alice")
    assert secret.startswith("sk-fg-") and len(secret) > 40
    row = listed(redis_server.url)["cli-alice"]
    key_id, created, revoked = row["ID"], row["CREATED"], row["REVOKED"]
    assert key_id.startswith("key_") and created.endswith("Z") and revoked == "no"
    assert (row["RPM"], row["TPM"]) == ("default", "default")
    listing = keys_cli(redis_server.url, "list").stdout
    assert secret not in listing and secret.removeprefix("sk-fg-") not in listing

    # Stored hashed: the secret is nowhere in Redis.
    client = redis.Redis.from_url(redis_server.url)
    for key in client.scan_iter(match="fleetgate:apikey*"):
        values = client.hgetall(key) if client.type(key) == b"hash" else {b"": client.get(key)}
        assert all(secret.encode() not in v for v in values.values())
    client.close()

    duplicate = keys_cli(redis_server.url, "create", "--name", "cli-alice")
    assert duplicate.returncode == 1 and "already exists" in duplicate.stderr

    revoked_run = keys_cli(redis_server.url, "revoke", "cli-alice")
    assert revoked_run.returncode == 0 and key_id in revoked_run.stdout
    assert listed(redis_server.url)["cli-alice"]["REVOKED"] != "no"
    # By id, again: idempotent. An unknown key is an error.
    assert keys_cli(redis_server.url, "revoke", key_id).returncode == 0
    unknown = keys_cli(redis_server.url, "revoke", "nobody")
    assert unknown.returncode == 1 and "no key" in unknown.stderr


def test_keys_cli_server_tools_flag(redis_server) -> None:
    url = redis_server.url
    suffix = uuid.uuid4().hex[:6]  # keys outlive a test in the session's Redis
    on, off = f"cli-tools-on-{suffix}", f"cli-tools-off-{suffix}"
    create_key(url, on, "--server-tools", "--priority", "2")
    create_key(url, off)
    rows = listed(url)
    assert rows[on]["OTHER"] == "priority=2,server_tools=on" and rows[off]["OTHER"] == "-"
    as_json = {k["name"]: k for k in json.loads(keys_cli(url, "list", "--format", "json").stdout)}
    assert (as_json[on]["server_tools"], as_json[off]["server_tools"]) == (True, False)
    assert record_of(url, on)["server_tools"] == "1" and "server_tools" not in record_of(url, off)

    # An update without the option leaves it; --no-server-tools turns it off (the field is gone), and on again.
    assert keys_cli(url, "update", on, "--priority", "3").returncode == 0
    assert listed(url)[on]["OTHER"] == "priority=3,server_tools=on"
    turned_off = keys_cli(url, "update", on, "--no-server-tools")
    assert turned_off.returncode == 0, turned_off.stderr
    assert turned_off.stdout.endswith("server_tools true -> false\n"), turned_off.stdout
    assert listed(url)[on]["OTHER"] == "priority=3" and "server_tools" not in record_of(url, on)
    turned_on = keys_cli(url, "update", off, "--server-tools")
    assert "server_tools false -> true" in turned_on.stdout and listed(url)[off]["OTHER"] == "server_tools=on"


def test_two_auth_routers_honour_the_same_keys(router_factory, router_cluster, redis_server) -> None:  # noqa: F811
    routers = [router_factory(env=AUTH_ON), router_factory(env=AUTH_ON)]
    for router in routers:
        router.wait_for_replicas("rt-sim", 1)
    secret = create_key(redis_server.url, "shared-bob")
    assert [chat_ok(r, secret) for r in routers] == [True, True]
    # x-api-key works as well as Bearer.
    response = httpx.post(
        f"{routers[1].base_url}/v1/chat/completions",
        json={"model": "rt-sim", "messages": HELLO},
        headers={"x-api-key": secret},
    )
    assert response.status_code == 200
    assert routers[0].openai(api_key=secret).models.list().data

    assert keys_cli(redis_server.url, "revoke", "shared-bob").returncode == 0
    for router in routers:
        with pytest.raises(openai.AuthenticationError) as caught:
            router.openai(api_key=secret).chat.completions.create(model="rt-sim", messages=HELLO)
        assert caught.value.response.json()["error"]["message"] == "This API key has been revoked"


def test_bootstrap_key_is_registered_once(router_factory, router_cluster, redis_server) -> None:  # noqa: F811
    bootstrap = "sk-fg-bootstrap-test-secret-0123456789abcdef"
    env = {**AUTH_ON, "FLEETGATE_BOOTSTRAP_KEY": bootstrap}

    def bootstrap_keys() -> int:
        # Other tests in the session may register bootstrap keys of their own: count the change.
        listing = keys_cli(redis_server.url, "list").stdout.splitlines()[1:]
        return [line.split()[1] for line in listing].count("bootstrap")

    before = bootstrap_keys()
    routers = [router_factory(env=env), router_factory(env=env)]
    routers[0].wait_for_replicas("rt-sim", 1)
    assert all(chat_ok(r, bootstrap) for r in routers)
    assert bootstrap_keys() == before + 1
