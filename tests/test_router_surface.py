"""Issue 14's closed network surface and truthful readiness, against real routers and sim replicas.

Replicas with a token serve only calls that carry it (the router sends it); the
interactive docs, CORS and JSON content types; ``/ready`` with Redis down; the
registry kept across a Redis restart; ``fleetgate keys`` without Redis. The module
runs on a Redis of its own (stopped and restarted here), never the session's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import orjson
import pytest
import yaml

from conftest import RedisServer, free_port
from fleetgate.core.replica_auth import REPLICA_TOKEN_ENV, REPLICA_TOKEN_METADATA
from fleetgate.v1 import replica_pb2 as pb
from fleetgate.v1 import replica_pb2_grpc
from replica_process import ReplicaProcess
from router_process import ROUTER_CONFIG, RouterProcess, router_factory  # noqa: F401 (a fixture)

MODEL = "rt-sim"
TOKEN = "test-replica-token"
TOKEN_ENV = {REPLICA_TOKEN_ENV: TOKEN}
CHAT_BODY = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """This module's own Redis (it replaces the session's here: router_factory starts routers on it)."""
    server = RedisServer(tmp_path_factory.mktemp("surface-redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def token_replica(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplicaProcess]:
    logs = tmp_path_factory.mktemp("surface-replica")
    replica = ReplicaProcess(ROUTER_CONFIG, MODEL, redis_server.url, env=TOKEN_ENV, log_path=logs / "replica.log")
    replica.start()
    yield replica
    replica.stop()


def generate(address: str, metadata: tuple[tuple[str, str], ...] = ()) -> list[pb.GenerateEvent]:
    request = pb.GenerateRequest(
        request_id="surface-1", model=MODEL,
        messages=[pb.Message(role=pb.ROLE_USER, content=[pb.ContentPart(text="hi")])],
    )
    with grpc.insecure_channel(address) as channel:
        return list(replica_pb2_grpc.ReplicaStub(channel).Generate(request, metadata=metadata, timeout=10))


def chat(router: RouterProcess) -> int:
    return router.openai().chat.completions.with_raw_response.create(**CHAT_BODY).http_response.status_code


# -- routers authenticate to replicas -----------------------------------------------------------------------------


def test_replica_refuses_calls_without_the_token(token_replica):
    for metadata in ((), ((REPLICA_TOKEN_METADATA, "wrong"),)):
        with pytest.raises(grpc.RpcError) as refused:
            generate(token_replica.address, metadata)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    events = generate(token_replica.address, ((REPLICA_TOKEN_METADATA, TOKEN),))
    assert events[-1].WhichOneof("event") == "finish"


def test_router_with_the_token_is_served_and_one_without_is_not(token_replica, router_factory):
    with_token = router_factory(env=TOKEN_ENV)
    with_token.wait_for_replicas(MODEL, 1)
    assert chat(with_token) == 200
    without = router_factory()
    without.wait_for_replicas(MODEL, 1)
    response = httpx_post(without, "/v1/chat/completions", CHAT_BODY)
    assert response.status_code >= 500
    assert "UNAUTHENTICATED" in response.json()["error"]["message"]  # the operator sees why


def httpx_post(router: RouterProcess, path: str, body: object, **headers: str) -> httpx.Response:
    return httpx.post(f"{router.base_url}{path}", json=body, headers=headers, timeout=30)


# -- the router's HTTP surface --------------------------------------------------------------------------------------

CORS_ORIGIN = "https://app.example"
LOCKED_ENV = {
    **TOKEN_ENV, "FLEETGATE_ROUTER__AUTH": "true", "FLEETGATE_ROUTER__CORS_ALLOW_ORIGINS": f"[{CORS_ORIGIN}]",
    "FLEETGATE_ROUTER__METRICS_KEY": "metrics-secret",
}
# Each dialect's path, a valid body, and where its error shape keeps the error type.
DIALECTS = {
    "chat": ("/v1/chat/completions", CHAT_BODY),
    "completions": ("/v1/completions", {"model": MODEL, "prompt": "hi"}),
    "messages": ("/v1/messages", {"model": MODEL, "max_tokens": 8, "messages": CHAT_BODY["messages"]}),
    "responses": ("/v1/responses", {"model": MODEL, "input": "hi", "store": False}),
}


def error_type(dialect: str, body: dict) -> str:
    if dialect == "messages":
        assert body["type"] == "error"
    else:
        assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]["type"]


@pytest.fixture()
def open_router(token_replica, router_factory, tmp_path: Path) -> RouterProcess:
    """Auth off, nothing else configured (the defaults); only MODEL configured, so it is ready when MODEL is."""
    config = yaml.safe_load(ROUTER_CONFIG.read_text())
    config["models"] = [m for m in config["models"] if m["name"] == MODEL]
    (tmp_path / "one-model.yaml").write_text(yaml.safe_dump(config))
    router = router_factory(config=tmp_path / "one-model.yaml", env=TOKEN_ENV)
    router.wait_for_replicas(MODEL, 1)
    return router


def test_defaults_with_auth_off_docs_on_no_cors_json_only(open_router: RouterProcess):
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert httpx.get(f"{open_router.base_url}{path}", timeout=10).status_code == 200, path
    preflight = httpx.options(
        f"{open_router.base_url}/v1/chat/completions",
        headers={"origin": CORS_ORIGIN, "access-control-request-method": "POST"}, timeout=10,
    )
    assert "access-control-allow-origin" not in preflight.headers
    assert httpx_post(open_router, "/v1/chat/completions", CHAT_BODY, origin=CORS_ORIGIN).status_code == 200
    assert "access-control-allow-origin" not in httpx_post(open_router, "/v1/chat/completions", CHAT_BODY).headers
    for dialect, (path, body) in DIALECTS.items():
        raw = orjson.dumps(body)
        refused = httpx.post(f"{open_router.base_url}{path}", content=raw, headers={"content-type": "text/plain"})
        assert refused.status_code == 415, (dialect, refused.text)
        assert error_type(dialect, refused.json()) == "invalid_request_error"
        form = httpx.post(f"{open_router.base_url}{path}", content=raw,
                          headers={"content-type": "application/x-www-form-urlencoded"})
        assert form.status_code == 415, dialect
        served = httpx.post(f"{open_router.base_url}{path}", content=raw,
                            headers={"content-type": "Application/JSON; charset=utf-8"}, timeout=30)
        assert served.status_code == 200, (dialect, served.text)


def test_auth_on_closes_docs_and_metrics_and_cors_is_what_is_configured(token_replica, router_factory):
    router = router_factory(env=LOCKED_ENV)
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert httpx.get(f"{router.base_url}{path}", timeout=10).status_code == 404, path
    assert httpx.get(f"{router.base_url}/metrics", timeout=10).status_code == 401
    scraped = httpx.get(f"{router.base_url}/metrics", headers={"authorization": "Bearer metrics-secret"}, timeout=10)
    assert scraped.status_code == 200 and "fleetgate_healthy_replicas" in scraped.text
    preflight = httpx.options(
        f"{router.base_url}/v1/chat/completions",
        headers={"origin": CORS_ORIGIN, "access-control-request-method": "POST",
                 "access-control-request-headers": "authorization, content-type"}, timeout=10,
    )
    assert preflight.headers["access-control-allow-origin"] == CORS_ORIGIN
    other = httpx.options(f"{router.base_url}/v1/chat/completions",
                          headers={"origin": "https://evil.example", "access-control-request-method": "POST"})
    assert "access-control-allow-origin" not in other.headers
    docs_on = router_factory(env={**LOCKED_ENV, "FLEETGATE_ROUTER__DOCS": "true"})
    assert httpx.get(f"{docs_on.base_url}/openapi.json", timeout=10).status_code == 200


def test_metrics_on_a_port_of_its_own(token_replica, router_factory):
    port = free_port()
    router = router_factory(env={**TOKEN_ENV, "FLEETGATE_ROUTER__METRICS_PORT": str(port)})
    assert httpx.get(f"{router.base_url}/metrics", timeout=10).status_code == 404
    assert "fleetgate_healthy_replicas" in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text


# -- readiness and Redis outages ------------------------------------------------------------------------------------


def wait_until(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def test_ready_fails_while_redis_is_down_and_health_stays_up(open_router: RouterProcess, redis_server):
    assert httpx.get(f"{open_router.base_url}/ready", timeout=10).status_code == 200
    redis_server.stop()
    try:
        ready = httpx.get(f"{open_router.base_url}/ready", timeout=10)
        assert ready.status_code == 503
        assert ready.json()["reason"] == f"Redis is unreachable at {redis_server.url}"
        assert httpx.get(f"{open_router.base_url}/health", timeout=10).status_code == 200
    finally:
        redis_server.start()
    wait_until(lambda: httpx.get(f"{open_router.base_url}/ready", timeout=10).status_code == 200)


def test_registry_is_kept_across_a_redis_restart_longer_than_its_ttl(open_router: RouterProcess, redis_server):
    """Redis down for longer than the registry TTL (2 s here): the records expire, and until the replica's
    next heartbeat the registry is empty; requests right after the restart are still served."""
    statuses: list[int] = []
    stop = threading.Event()

    def burst() -> None:
        with httpx.Client(base_url=open_router.base_url, timeout=30) as client:
            while not stop.is_set():
                statuses.append(client.post("/v1/chat/completions", json=CHAT_BODY).status_code)

    redis_server.stop()
    time.sleep(3.0)
    sender = threading.Thread(target=burst)
    redis_server.start()
    sender.start()
    try:
        time.sleep(3.0)
    finally:
        stop.set()
        sender.join(timeout=30)
    assert len(statuses) > 10 and set(statuses) == {200}, statuses
    wait_until(lambda: open_router.metric("fleetgate_healthy_replicas", model=MODEL) == 1)


# -- fleetgate keys --------------------------------------------------------------------------------------------------


def keys_command(*args: str, redis_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FLEETGATE_REDIS__URL": redis_url}
    return subprocess.run([sys.executable, "-m", "fleetgate.launcher.cli", "keys", *args], env=env,
                          capture_output=True, text=True, timeout=60)


def test_keys_without_redis_is_one_line_and_config_goes_after_the_subcommand(redis_server):
    down = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    failed = keys_command("list", redis_url=down)
    assert failed.returncode == 1 and failed.stdout == ""
    assert failed.stderr.splitlines() == [f"error: Redis is unreachable at {down.replace('hunter2', '***')}"]
    created = keys_command("create", "--name", "surface", "--config", str(ROUTER_CONFIG), redis_url=redis_server.url)
    assert created.returncode == 0, created.stderr
    assert created.stdout.startswith("sk-")
