"""A reference floor for part (a): the least an HTTP-to-gRPC streaming relay on the router's stack can cost.

uvicorn (uvloop, httptools, no access log) + Starlette ``StreamingResponse`` +
one ``grpc.aio`` channel to one replica, and nothing else: no auth, validation,
routing, retries, metrics or dialect objects. Each text event becomes one Chat
Completions chunk, then a usage chunk and ``[DONE]``. What the router costs
above this is fleetgate's own work; this much is the frameworks'.

    python -m fleetgate.loadtest.bench.bare_relay --replica HOST:PORT --model sim --port N
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from fleetgate.v1 import replica_pb2 as pb
from fleetgate.v1 import replica_pb2_grpc


def build_app(replica_address: str, model: str) -> Starlette:
    stubs: list[replica_pb2_grpc.ReplicaStub] = []

    def stub() -> replica_pb2_grpc.ReplicaStub:
        if not stubs:  # the channel must be created inside the server's event loop
            stubs.append(replica_pb2_grpc.ReplicaStub(grpc.aio.insecure_channel(replica_address)))
        return stubs[0]

    async def chat(request: Request) -> StreamingResponse:
        body = orjson.loads(await request.body())
        generate = pb.GenerateRequest(
            request_id=uuid.uuid4().hex,
            model=body["model"],
            messages=[pb.Message(role=pb.ROLE_USER, content=[pb.ContentPart(text=body["messages"][-1]["content"])])],
            sampling=pb.Sampling(max_tokens=body["max_tokens"]),
        )
        return StreamingResponse(_frames(stub(), generate), media_type="text/event-stream")

    async def models(request: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [{"id": model, "object": "model"}]})

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"]), Route("/v1/models", models)])


async def _frames(stub: replica_pb2_grpc.ReplicaStub, request: pb.GenerateRequest) -> AsyncIterator[bytes]:
    chunk_id = "chatcmpl-" + request.request_id
    created = int(time.time())

    def frame(choices: list[dict[str, Any]], **extra: object) -> bytes:
        chunk = {"id": chunk_id, "object": "chat.completion.chunk", "created": created, "model": request.model,
                 "choices": choices, **extra}
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    async for event in stub.Generate(request):
        kind = event.WhichOneof("event")
        if kind == "text":
            yield frame([{"index": 0, "delta": {"content": event.text.text}, "finish_reason": None}])
        elif kind == "usage":
            yield frame([], usage={"prompt_tokens": event.usage.prompt_tokens,
                                   "completion_tokens": event.usage.completion_tokens})
    yield b"data: [DONE]\n\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replica", required=True, help="replica gRPC address host:port")
    parser.add_argument("--model", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(build_app(args.replica, args.model), host=args.host, port=args.port, loop="uvloop", http="httptools",
                access_log=False, log_level="warning")


if __name__ == "__main__":
    main()
