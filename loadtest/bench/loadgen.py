"""Closed-loop load generators: streaming chat over HTTP/SSE (aiohttp) and Generate over gRPC (the replica contract).

Both send the same work: request ``i`` asks prompt ``i mod len(PROMPTS)`` for at
most ``max_tokens`` tokens and records when it started, when its first token
arrived, when it ended and how many tokens it produced. ``run_load`` keeps
``concurrency`` requests in flight, for a duration or a number of requests,
after a warm-up whose requests are discarded, and samples CPU meters around
the measured window. The generator runs in the bench process, never inside the
process it measures.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import aiohttp
import grpc
import orjson

from fleetgate.loadtest import payloads
from fleetgate.loadtest.bench.cpu import CpuMeter
from fleetgate.loadtest.bench.stats import RequestRecord
from fleetgate.loadtest.streaming import StreamParser
from fleetgate.v1 import replica_pb2 as pb
from fleetgate.v1 import replica_pb2_grpc


def bench_prompt(index: int) -> str:
    """The prompt of request ``index``: the same sequence for every target."""
    return payloads.PROMPTS[index % len(payloads.PROMPTS)]


class LoadTarget(Protocol):
    """Something that can serve request ``index`` and tell how it went."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def send(self, index: int) -> RequestRecord: ...


@dataclass(frozen=True)
class LoadPlan:
    """How much load: ``concurrency`` in flight, for ``seconds`` or ``requests`` (exactly one), after a warm-up."""

    concurrency: int
    seconds: float | None = None
    requests: int | None = None
    warmup_seconds: float = 0.0
    warmup_requests: int = 0

    def __post_init__(self) -> None:
        if (self.seconds is None) == (self.requests is None):
            raise ValueError("a LoadPlan has either seconds or requests")
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")


@dataclass
class LoadRun:
    """The measured window of a run: its requests, wall time and the CPU each meter saw."""

    records: list[RequestRecord]
    wall_seconds: float
    cpu_seconds: dict[str, float | None]


class HttpChatTarget:
    """Streaming ``/v1/chat/completions`` against one or more OpenAI-compatible servers (request i → url i mod n)."""

    def __init__(self, base_urls: Sequence[str], model: str, max_tokens: int, *, temperature: float | None = None,
                 api_key: str | None = None) -> None:
        if not base_urls:
            raise ValueError("HttpChatTarget needs at least one base URL")
        self.urls = [url.rstrip("/") + "/v1/chat/completions" for url in base_urls]
        self.model = model
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.headers = {"content-type": "application/json"}
        if api_key:
            self.headers["authorization"] = f"Bearer {api_key}"
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=None)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=600)
        self._session = aiohttp.ClientSession(connector=connector, timeout=timeout)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def body(self, index: int) -> bytes:
        body = payloads.chat(self.model, self.max_tokens, True, text=bench_prompt(index))
        if self.temperature is not None:
            body["temperature"] = self.temperature
        return orjson.dumps(body)

    async def send(self, index: int) -> RequestRecord:
        assert self._session is not None, "open() first"
        data = self.body(index)
        started = time.perf_counter()
        parser = StreamParser("chat", started)
        try:
            async with self._session.post(self.urls[index % len(self.urls)], data=data, headers=self.headers) as resp:
                if resp.status != 200:
                    text = await resp.text()
                    return RequestRecord(started, time.perf_counter(), error=f"HTTP {resp.status}: {text[:200]}")
                async for line in resp.content:
                    parser.feed(line)
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            return RequestRecord(started, time.perf_counter(), error=f"{type(exc).__name__}: {exc}")
        result = parser.result
        error = result.error or (None if result.finished else "stream ended without [DONE]")
        first = result.token_times[0] if result.token_times else None
        return RequestRecord(started, time.perf_counter(), first, result.completion_tokens, error)


class GrpcGenerateTarget:
    """``Replica.Generate`` straight to one replica, the way the router calls it.

    One channel, one stream per request.
    """

    def __init__(self, address: str, model: str, max_tokens: int) -> None:
        self.address = address
        self.model = model
        self.max_tokens = max_tokens
        self._channel: grpc.aio.Channel | None = None
        self._stub: replica_pb2_grpc.ReplicaStub | None = None
        self._run_id = uuid.uuid4().hex[:8]

    async def open(self) -> None:
        self._channel = grpc.aio.insecure_channel(self.address)
        self._stub = replica_pb2_grpc.ReplicaStub(self._channel)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    def request(self, index: int) -> pb.GenerateRequest:
        return pb.GenerateRequest(
            request_id=f"bench-{self._run_id}-{index}",
            model=self.model,
            messages=[pb.Message(role=pb.ROLE_USER, content=[pb.ContentPart(text=bench_prompt(index))])],
            sampling=pb.Sampling(max_tokens=self.max_tokens),
        )

    async def send(self, index: int) -> RequestRecord:
        assert self._stub is not None, "open() first"
        request = self.request(index)
        started = time.perf_counter()
        first: float | None = None
        seen = 0
        reported: int | None = None
        error: str | None = "stream ended without finish"
        try:
            async for event in self._stub.Generate(request):
                kind = event.WhichOneof("event")
                if kind in ("text", "reasoning", "tool_call_delta"):
                    seen += 1
                    if first is None:
                        first = time.perf_counter()
                elif kind == "usage":
                    reported = event.usage.completion_tokens
                elif kind == "finish":
                    finish = event.finish
                    error = (f"finish error {finish.error_code}: {finish.error_message}"
                             if finish.reason == pb.Finish.REASON_ERROR else None)
        except grpc.aio.AioRpcError as exc:
            error = f"gRPC {exc.code().name}: {exc.details()}"
        return RequestRecord(started, time.perf_counter(), first, seen if reported is None else reported, error)


async def _run_requests(target: LoadTarget, concurrency: int, counter: itertools.count[int], *,
                        until: float | None = None, total: int | None = None) -> list[RequestRecord]:
    """Keep ``concurrency`` requests in flight until the deadline ``until`` or ``total`` requests were started."""
    records: list[RequestRecord] = []

    async def worker() -> None:
        while True:
            if until is not None and time.perf_counter() >= until:
                return
            index = next(counter)
            if total is not None and index >= total:
                return
            records.append(await target.send(index))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return records


async def run_load(target: LoadTarget, plan: LoadPlan, meters: Sequence[CpuMeter] = ()) -> LoadRun:
    """Warm up, then run ``plan``'s measured window with the CPU ``meters`` sampled around it."""
    if plan.warmup_requests:
        await _run_requests(target, plan.concurrency, itertools.count(), total=plan.warmup_requests)
    elif plan.warmup_seconds:
        await _run_requests(
            target, plan.concurrency, itertools.count(), until=time.perf_counter() + plan.warmup_seconds
        )
    for meter in meters:
        meter.start()
    began = time.perf_counter()
    if plan.requests is not None:
        records = await _run_requests(target, plan.concurrency, itertools.count(), total=plan.requests)
    else:
        assert plan.seconds is not None
        records = await _run_requests(target, plan.concurrency, itertools.count(), until=began + plan.seconds)
    wall = time.perf_counter() - began
    for meter in meters:
        meter.stop()
    return LoadRun(records=records, wall_seconds=wall, cpu_seconds={m.name: m.seconds for m in meters})


async def measure(target: LoadTarget, plan: LoadPlan, meters: Sequence[CpuMeter] = ()) -> LoadRun:
    """Open ``target``, run ``plan`` against it, close it."""
    await target.open()
    try:
        return await run_load(target, plan, meters)
    finally:
        await target.close()
