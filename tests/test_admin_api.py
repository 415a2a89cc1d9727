"""The admin HTTP API (/v1/admin/*) through a real router with auth on, beside the session's sim replicas.

The admin is the deployment's bootstrap key (FLEETGATE_BOOTSTRAP_KEY, registered with the admin role).
Every change is checked where a user notices it: the next request with the key (a rotated secret is
refused, the new one served; a revoked key refused), the stored settings read back over HTTP and by the
CLI, and the audit stream (one entry per change, who / what / when / where, no secret anywhere).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
import redis
import redis.asyncio as aioredis

from fleetgate.core.config import load_config
from fleetgate.router.app import create_app
from fleetgate.router.audit import AUDIT_STREAM
from fleetgate.router.auth import KEY_RECORD_PREFIX, KeyStore, hash_secret
from keys_helpers import create_key, keys_cli
from router_process import ROUTER_CONFIG, RouterProcess, router_cluster, router_factory  # noqa: F401

HELLO = [{"role": "user", "content": "hi"}]
AUTH_ON = {"FLEETGATE_ROUTER__AUTH": "true"}
SECRET_PATTERN = re.compile(r"sk-fg-[A-Za-z0-9_-]{20,}")


def unique(name: str) -> str:
    """Keys outlive a test in the session's Redis: a fresh name each time."""
    return f"{name}-{uuid.uuid4().hex[:6]}"


class Admin:
    """An HTTP client of one router's admin API with one key; remembers every body it read."""

    def __init__(self, router: RouterProcess, key: str) -> None:
        self.router = router
        self.client = httpx.Client(base_url=f"{router.base_url}/v1/admin", headers={"authorization": f"Bearer {key}"},
                                   timeout=30.0)
        self.seen: list[str] = []

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self.client.request(method, path, **kwargs)
        self.seen.append(response.text)
        return response

    def ok(self, method: str, path: str, status: int = 200, **kwargs: Any) -> Any:
        response = self.call(method, path, **kwargs)
        assert response.status_code == status, response.text
        return response.json()


@pytest.fixture(scope="module")
def admin_router(redis_server, router_cluster,  # noqa: F811
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RouterProcess, str]]:
    """A router with auth on and its bootstrap key (an admin key): ``(router, secret)``."""
    secret = f"sk-fg-admin-test-{uuid.uuid4().hex}"
    log = tmp_path_factory.mktemp("admin-router") / "router.log"
    router = RouterProcess(ROUTER_CONFIG, redis_server.url, env={**AUTH_ON, "FLEETGATE_BOOTSTRAP_KEY": secret},
                           log_path=log)
    with router:
        router.wait_for_replicas("rt-sim", 1)
        yield router, secret


@pytest.fixture()
def admin(admin_router) -> Iterator[Admin]:
    router, secret = admin_router
    client = Admin(router, secret)
    yield client
    client.client.close()


def chat_status(router: RouterProcess, key: str, model: str = "rt-sim") -> int:
    response = httpx.post(f"{router.base_url}/v1/chat/completions", json={"model": model, "messages": HELLO},
                          headers={"authorization": f"Bearer {key}"}, timeout=30.0)
    return response.status_code


def key_id_of(redis_url: str, secret: str) -> str:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        key_id: str = client.hget(KEY_RECORD_PREFIX + hash_secret(secret), "id")
        return key_id
    finally:
        client.close()


def stream_entries(redis_url: str, target: str) -> list[dict[str, str]]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        return [fields for _, fields in client.xrange(AUDIT_STREAM) if fields.get("target") == target]
    finally:
        client.close()


def everything_in_redis(redis_url: str) -> str:
    """Every key's value in the Redis (hashes, strings, sets, streams) as one text, to search for secrets."""
    client = redis.Redis.from_url(redis_url, decode_responses=False)
    parts: list[str] = []
    try:
        for key in client.scan_iter(match="fleetgate:*", count=1000):
            kind = client.type(key)
            if kind == b"hash":
                parts += [repr(client.hgetall(key))]
            elif kind == b"string":
                parts += [repr(client.get(key))]
            elif kind == b"set":
                parts += [repr(client.smembers(key))]
            elif kind == b"stream":
                parts += [repr(client.xrange(key))]
    finally:
        client.close()
    return "\n".join(parts)


def admin_routes() -> list[tuple[str, str]]:
    """(method, path) of every route the app serves under /v1/admin (a new route cannot be left out)."""
    app = create_app(load_config(ROUTER_CONFIG))
    found = []
    for route in app.routes:
        path = getattr(route, "path", "")
        if path.startswith("/v1/admin"):
            found += [(method, path) for method in sorted(getattr(route, "methods", ()) or ()) if method != "HEAD"]
    return found


# --- keys over HTTP ---------------------------------------------------------------------------------------


def test_admin_creates_updates_rotates_and_revokes_a_key(admin, admin_router, redis_server) -> None:
    router, admin_secret = admin_router
    started = time.time()
    name = unique("http-alice")
    created = admin.ok("POST", "/keys", 201, json={
        "name": name, "role": "user", "owner": "team-a", "rpm": 50, "budgets": {"day_tokens": 100000},
        "models": ["rt-sim", "rt-echo"], "max_tokens": 64, "weight": 2, "priority": -3,
    })
    secret, key_id = created.pop("secret"), created["id"]
    assert SECRET_PATTERN.fullmatch(secret) and key_id.startswith("key_")
    assert created["name"] == name and created["owner"] == "team-a" and created["rpm"] == 50
    assert created["budgets"]["day_tokens"] == 100000 and created["budgets"]["month_tokens"] is None
    assert (created["models"], created["max_tokens"], created["weight"], created["priority"]) == (
        ["rt-sim", "rt-echo"], 64, 2.0, -3)
    assert created["revoked"] is False and started - 1 <= created["created_at"] <= time.time() + 1
    assert chat_status(router, secret) == 200

    # Listed and read back with the same settings, and never a secret or hash.
    listed = {k["id"]: k for k in admin.ok("GET", "/keys")["data"]}
    assert listed[key_id] == created == admin.ok("GET", f"/keys/{key_id}")
    assert all("secret" not in k and "hash" not in json.dumps(k) for k in listed.values())

    # PATCH changes what it names, clears what it sets to null, leaves the rest.
    patched = admin.ok("PATCH", f"/keys/{key_id}", json={
        "name": name + "-renamed", "owner": None, "tpm": 9000, "rpm": None,
        "budgets": {"day_tokens": None, "month_output_tokens": 5000}, "models": ["rt-echo"], "max_tokens": None,
        "weight": 0.5, "priority": 7,
    })
    assert patched["name"] == name + "-renamed" and patched["owner"] == "" and patched["role"] == "user"
    assert (patched["rpm"], patched["tpm"], patched["max_tokens"], patched["weight"], patched["priority"]) == (
        None, 9000, None, 0.5, 7)
    assert patched["budgets"] == {"day_tokens": None, "day_input_tokens": None, "day_output_tokens": None,
                                  "month_tokens": None, "month_input_tokens": None, "month_output_tokens": 5000}
    assert patched["models"] == ["rt-echo"]
    assert admin.ok("GET", f"/keys/{key_id}") == patched
    # The CLI reads the same record.
    (by_cli,) = [k for k in json.loads(keys_cli(redis_server.url, "list", "--format", "json").stdout)
                 if k["id"] == key_id]
    assert by_cli == patched
    # The key authenticates with its new settings on the next request (enforcement is the pipeline's).
    with pytest.raises(openai.AuthenticationError):
        router.openai("sk-fg-not-a-key").models.list()
    assert router.openai(secret).models.list().data

    # Rotate: the old secret is refused at once, the new one works, same id and settings.
    rotated = admin.ok("POST", f"/keys/{key_id}/rotate")
    new_secret = rotated.pop("secret")
    assert new_secret != secret and SECRET_PATTERN.fullmatch(new_secret)
    assert rotated["id"] == key_id and rotated["rotated_at"] is not None
    assert {k: v for k, v in rotated.items() if k != "rotated_at"} == {k: v for k, v in patched.items()
                                                                      if k != "rotated_at"}
    assert chat_status(router, secret, "rt-echo") == 401
    assert chat_status(router, new_secret, "rt-echo") == 200

    # A role change takes effect on the next request: the key becomes an admin, then a user again.
    assert admin.call("GET", "/keys", headers={"authorization": f"Bearer {new_secret}"}).status_code == 403
    admin.ok("PATCH", f"/keys/{key_id}", json={"role": "admin"})
    assert admin.call("GET", "/keys", headers={"authorization": f"Bearer {new_secret}"}).status_code == 200
    admin.ok("PATCH", f"/keys/{key_id}", json={"role": "user"})

    # Revoke: the key is refused, stays listed as revoked; revoking again changes nothing.
    revoked = admin.ok("POST", f"/keys/{key_id}/revoke")
    assert revoked["revoked"] is True and revoked["revoked_at"] is not None
    assert chat_status(router, new_secret, "rt-echo") == 401
    assert admin.ok("POST", f"/keys/{key_id}/revoke")["revoked_at"] == revoked["revoked_at"]
    assert admin.ok("GET", f"/keys/{key_id}")["revoked"] is True

    # The audit log: one entry per change, newest first, who / what / when / where.
    entries = admin.ok("GET", "/audit", params={"key": key_id})["data"]
    assert [e["action"] for e in entries] == [
        "key.revoke", "key.revoke", "key.update", "key.update", "key.rotate", "key.update", "key.create"]
    bootstrap_id = key_id_of(redis_server.url, admin_secret)
    assert listed[bootstrap_id]["name"] == "bootstrap" and listed[bootstrap_id]["role"] == "admin"
    for entry in entries:
        assert (entry["actor"], entry["actor_name"], entry["via"]) == (bootstrap_id, "bootstrap", "api")
        assert entry["target"] == key_id and entry["client"] == "127.0.0.1"
        assert started - 1 <= entry["at"] <= time.time() + 1 and entry["time"].endswith("Z")
    assert entries == sorted(entries, key=lambda e: e["at"], reverse=True)
    create, update = entries[-1], entries[-2]
    assert create["changes"]["name"] == [None, name] and create["changes"]["budgets.day_tokens"] == [None, 100000]
    assert create["changes"]["models"] == [None, ["rt-sim", "rt-echo"]] and "role" not in create["changes"]
    assert update["changes"] == {
        "name": [name, name + "-renamed"], "owner": ["team-a", ""], "rpm": [50, None], "tpm": [None, 9000],
        "budgets.day_tokens": [100000, None], "budgets.month_output_tokens": [None, 5000],
        "models": [["rt-sim", "rt-echo"], ["rt-echo"]], "max_tokens": [64, None], "weight": [2.0, 0.5],
        "priority": [-3, 7],
    }
    assert entries[0]["changes"] == {} and entries[1]["changes"] == {"revoked": [False, True]}
    assert entries[2]["changes"] == {"role": ["admin", "user"]}
    assert len(stream_entries(redis_server.url, key_id)) == len(entries)

    # No secret anywhere but in its one-time answer: not in Redis (the stream included), not in any other body.
    stored = everything_in_redis(redis_server.url)
    for one_time in (secret, new_secret, admin_secret):
        assert one_time not in stored and one_time.removeprefix("sk-fg-") not in stored
    carrying = [body for body in admin.seen if secret in body or new_secret in body]
    assert len(carrying) == 2 and all('"secret"' in body for body in carrying)
    assert not any(admin_secret in body for body in admin.seen)


def test_server_tools_is_off_by_default_and_toggled_over_http(admin, redis_server) -> None:
    plain = admin.ok("POST", "/keys", 201, json={"name": unique("http-plain")})
    assert plain["server_tools"] is False
    key_id = admin.ok("POST", "/keys", 201, json={"name": unique("http-tools"), "server_tools": True})["id"]
    assert admin.ok("GET", f"/keys/{key_id}")["server_tools"] is True
    listed = {k["id"]: k for k in admin.ok("GET", "/keys")["data"]}
    assert (listed[key_id]["server_tools"], listed[plain["id"]]["server_tools"]) == (True, False)

    # PATCH: left out, unchanged; false turns it off; null resets it to the default (off); true turns it on.
    assert admin.ok("PATCH", f"/keys/{key_id}", json={"priority": 4})["server_tools"] is True
    assert admin.ok("PATCH", f"/keys/{key_id}", json={"server_tools": False})["server_tools"] is False
    assert admin.ok("GET", f"/keys/{key_id}")["server_tools"] is False
    assert admin.ok("PATCH", f"/keys/{key_id}", json={"server_tools": True})["server_tools"] is True
    assert admin.ok("PATCH", f"/keys/{key_id}", json={"server_tools": None})["server_tools"] is False
    assert admin.ok("PATCH", f"/keys/{plain['id']}", json={"server_tools": True})["server_tools"] is True
    # The CLI reads the same record.
    by_cli = {k["id"]: k for k in json.loads(keys_cli(redis_server.url, "list", "--format", "json").stdout)}
    assert (by_cli[key_id]["server_tools"], by_cli[plain["id"]]["server_tools"]) == (False, True)

    # Audited like any other setting (an unchanged value is no change).
    entries = admin.ok("GET", "/audit", params={"key": key_id})["data"]
    assert [e["changes"] for e in entries] == [
        {"server_tools": [True, False]}, {"server_tools": [False, True]}, {"server_tools": [True, False]},
        {"priority": [0, 4]}, {"name": [None, listed[key_id]["name"]], "server_tools": [None, True]},
    ]
    assert "server_tools" not in admin.ok("GET", "/audit", params={"key": plain["id"], "action": "key.create"})[
        "data"][0]["changes"]


def test_forwarded_for_is_honoured_only_from_a_trusted_proxy(admin, router_factory, router_cluster,  # noqa: F811
                                                            admin_router, redis_server) -> None:
    _, admin_secret = admin_router
    # The admin router trusts X-Forwarded-For from loopback (uvicorn's FORWARDED_ALLOW_IPS default).
    key_id = admin.ok("POST", "/keys", 201, json={"name": unique("xff")},
                      headers={"x-forwarded-for": "203.0.113.7"})["id"]
    (entry,) = admin.ok("GET", "/audit", params={"key": key_id})["data"]
    assert (entry["client"], entry["forwarded_for"]) == ("203.0.113.7", "203.0.113.7")

    # A router that trusts no proxy records the connection's address, and the header only as a claim.
    untrusting = router_factory(env={**AUTH_ON, "FORWARDED_ALLOW_IPS": ""})
    other = Admin(untrusting, admin_secret)
    key_id = other.ok("POST", "/keys", 201, json={"name": unique("xff")},
                      headers={"x-forwarded-for": "203.0.113.8"})["id"]
    (entry,) = other.ok("GET", "/audit", params={"key": key_id})["data"]
    assert (entry["client"], entry["forwarded_for"]) == ("127.0.0.1", "203.0.113.8")
    other.client.close()


def test_a_user_key_gets_403_on_every_admin_route(admin, admin_router, redis_server) -> None:
    router, _ = admin_router
    routes = admin_routes()
    expected = {("POST", "/v1/admin/keys"), ("GET", "/v1/admin/keys"), ("GET", "/v1/admin/keys/{key_id}"),
                ("PATCH", "/v1/admin/keys/{key_id}"), ("POST", "/v1/admin/keys/{key_id}/revoke"),
                ("POST", "/v1/admin/keys/{key_id}/rotate"), ("GET", "/v1/admin/usage"), ("GET", "/v1/admin/audit")}
    assert expected <= set(routes)
    user_secret = create_key(redis_server.url, unique("plain-user"))
    user_id = key_id_of(redis_server.url, user_secret)
    audit_before = len(redis.Redis.from_url(redis_server.url).xrange(AUDIT_STREAM))
    for method, path in routes:
        for key_id in (user_id, "key_doesnotexist"):
            url = router.base_url + path.replace("{key_id}", key_id)
            body = {"name": unique("sneaky"), "role": "admin"} if method in ("POST", "PATCH") else None
            response = httpx.request(method, url, json=body, headers={"authorization": f"Bearer {user_secret}"})
            assert response.status_code == 403, (method, path, response.text)
            error = response.json()["error"]
            assert error["type"] == "permission_error" and error["code"] == "admin_role_required"
            assert "admin role" in error["message"] and "'user'" in error["message"]
            assert user_secret not in response.text
            anonymous = httpx.request(method, url, json=body)
            assert anonymous.status_code == 401 and anonymous.json()["error"]["type"] == "authentication_error"
            wrong = httpx.request(method, url, json=body, headers={"authorization": "Bearer sk-fg-wrong"})
            assert wrong.status_code == 401
    # The user key is still a user, and nothing reached the audit log.
    assert admin.ok("GET", f"/keys/{user_id}")["role"] == "user"
    assert len(redis.Redis.from_url(redis_server.url).xrange(AUDIT_STREAM)) == audit_before


def test_bad_bodies_and_unknown_ids(admin) -> None:
    def refused(method: str, path: str, status: int, **kwargs: Any) -> dict[str, Any]:
        response = admin.call(method, path, **kwargs)
        assert response.status_code == status, response.text
        error: dict[str, Any] = response.json()["error"]
        return error

    name = unique("bad")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"name": name, "budgets": {"day_tokens": 0}}, "budgets.day_tokens"),
        ({"name": name, "budgets": {"week_tokens": 5}}, "budgets.week_tokens"),
        ({"name": name, "weight": 0}, "weight"),
        ({"name": name, "weight": 5000}, "weight"),
        ({"name": name, "priority": 99999}, "priority"),
        ({"name": name, "rpm": "5"}, "rpm"),
        ({"name": name, "max_tokens": True}, "max_tokens"),
        ({"name": name, "server_tools": "true"}, "server_tools"),
        ({"name": name, "server_tools": 1}, "server_tools"),
        ({"name": name, "role": "root"}, "role"),
        ({"name": name, "models": [""]}, "models[0]"),
        ({"name": name, "colour": "blue"}, "colour"),
        ({"name": ""}, "name"),
        ({"role": "admin"}, "name"),
    ]
    for body, param in cases:
        error = refused("POST", "/keys", 400, json=body)
        assert error["type"] == "invalid_request_error" and error["param"] == param, (body, error)
        assert error["message"].startswith(param), error
    assert refused("POST", "/keys", 400, content=b"{not json", headers={"content-type": "application/json"})
    assert refused("POST", "/keys", 415, content=b"name=x", headers={"content-type": "text/plain"})

    key_id = admin.ok("POST", "/keys", 201, json={"name": name})["id"]
    taken = refused("POST", "/keys", 400, json={"name": name})
    assert taken["param"] == "name" and "already exists" in taken["message"]
    for body, param in [({"name": None}, "name"), ({"role": None}, "role"), ({"tpm": -1}, "tpm"),
                        ({"owner": 5}, "owner"), ({"server_tools": "yes"}, "server_tools"),
                        ({"server_tools": 0}, "server_tools")]:
        assert refused("PATCH", f"/keys/{key_id}", 400, json=body)["param"] == param
    other = admin.ok("POST", "/keys", 201, json={"name": unique("bad")})["id"]
    assert refused("PATCH", f"/keys/{other}", 400, json={"name": name})["param"] == "name"

    for method, path in [("GET", "/keys/key_nope"), ("PATCH", "/keys/key_nope"), ("POST", "/keys/key_nope/revoke"),
                         ("POST", "/keys/key_nope/rotate")]:
        error = refused(method, path, 404, json={"priority": 1} if method == "PATCH" else None)
        assert (error["type"], error["code"]) == ("not_found_error", "key_not_found") and "key_nope" in error["message"]
    # A name is not an id here.
    assert refused("GET", f"/keys/{name}", 404)["code"] == "key_not_found"

    admin.ok("POST", f"/keys/{key_id}/revoke")
    assert refused("POST", f"/keys/{key_id}/rotate", 400)["code"] == "key_revoked"

    assert refused("GET", "/audit", 400, params={"limit": "0"})["param"] == "limit"
    assert refused("GET", "/audit", 400, params={"since": "last tuesday"})["param"] == "since"
    assert refused("GET", "/usage", 400, params={"since": "2026-13-01"})["param"] == "since"
    assert refused("GET", "/usage", 400, params={"since": "2026-12-02", "until": "2026-12-01"})["param"] == "since"
    assert refused("GET", "/usage", 400, params={"format": "xml"})["param"] == "format"
    assert refused("GET", "/usage", 404, params={"key": "nobody-at-all"})["param"] == "key"


def test_admin_api_is_off_without_auth(router_cluster) -> None:  # noqa: F811
    for method, path in admin_routes():
        response = httpx.request(method, router_cluster.base_url + path.replace("{key_id}", "key_x"))
        assert response.status_code == 403, (method, path)
        assert "router.auth is false" in response.json()["error"]["message"]


def test_bootstrap_key_registered_before_roles_becomes_admin(router_factory, router_cluster, redis_server) -> None:  # noqa: F811
    secret = f"sk-fg-old-bootstrap-{uuid.uuid4().hex}"

    async def register_as_before() -> str:
        client = aioredis.from_url(redis_server.url)
        info = await KeyStore(client).register(secret, "bootstrap")  # as the router did before roles: a user key
        await client.aclose()
        assert info is not None and info.policy.role == "user"
        return info.id

    key_id = asyncio.run(register_as_before())
    router = router_factory(env={**AUTH_ON, "FLEETGATE_BOOTSTRAP_KEY": secret})
    admin = Admin(router, secret)
    assert admin.ok("GET", f"/keys/{key_id}")["role"] == "admin"
    (entry,) = stream_entries(redis_server.url, key_id)
    assert entry["action"] == "key.bootstrap" and entry["via"] == "router" and entry["actor"].startswith("router:")
    assert json.loads(entry["changes"]) == {"role": ["user", "admin"]}
    # A second router finds it an admin already: nothing more is recorded.
    router_factory(env={**AUTH_ON, "FLEETGATE_BOOTSTRAP_KEY": secret})
    assert len(stream_entries(redis_server.url, key_id)) == 1
    admin.client.close()


def test_usage_endpoint_reads_the_ledger(admin, admin_router) -> None:
    router, _ = admin_router
    created = admin.ok("POST", "/keys", 201, json={"name": unique("usage")})
    secret, key_id = created["secret"], created["id"]
    for _ in range(2):
        assert chat_status(router, secret) == 200
    deadline = time.monotonic() + 10
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        rows = admin.ok("GET", "/usage", params={"key": key_id})["data"]
        if rows and rows[0]["requests"] == 2:
            break
        time.sleep(0.1)
    (row,) = rows
    assert (row["key_id"], row["model"], row["requests"]) == (key_id, "rt-sim", 2)
    assert row["input_tokens"] > 0 and row["output_tokens"] == 16 and row["total_tokens"] == (
        row["input_tokens"] + row["output_tokens"])
    # Filters: a model the key did not call, a day range without its use; per day; CSV.
    assert admin.ok("GET", "/usage", params={"key": key_id, "model": "rt-echo"})["data"] == []
    assert admin.ok("GET", "/usage", params={"key": key_id, "since": "2020-01-01", "until": "2020-01-31"})["data"] == []
    daily = admin.ok("GET", "/usage", params={"key": key_id, "daily": "true"})
    assert [r["day"] for r in daily["data"]] == [daily["until"]]
    csv = admin.call("GET", "/usage", params={"key": key_id, "format": "csv"})
    assert csv.headers["content-type"].startswith("text/csv")
    header, line = csv.text.strip().splitlines()
    assert header.split(",")[:3] == ["key_id", "key_name", "model"] and line.startswith(f"{key_id},")
    assert secret not in csv.text

