"""Issue 14's closed network surface and truthful readiness, against real routers and sim replicas.

Replicas with a token serve only calls that carry it (the router sends it); the
interactive docs, CORS and JSON content types; ``/ready`` with Redis down; the
registry kept across a Redis restart; ``fleetgate keys`` without Redis. The module
runs on a Redis of its own (stopped and restarted here), never the session's.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from conftest import RedisServer
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


def httpx_post(router: RouterProcess, path: str, body: object, **headers: str):
    import httpx

    return httpx.post(f"{router.base_url}{path}", json=body, headers=headers, timeout=30)
