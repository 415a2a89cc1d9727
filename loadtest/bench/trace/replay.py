"""Open-loop replay: each trace request is sent at its arrival time (scaled by the speed), whatever is in flight.

Request ``i`` goes to router ``i mod R`` as a streamed call of the chosen dialect
(aiohttp, one shared connection pool); its body is built when it is due. The
record keeps when it was due and sent, its first token and end, the tokens it
streamed and the prompt / cached split its usage reported. Requests still open
``drain_timeout_s`` after the last one was sent are cancelled and count as errors.
``warm_up`` sends each router one short request first (its first request pays
one-time costs that are not routing).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp

from fleetgate.loadtest.bench.trace.bodies import Dialect
from fleetgate.loadtest.bench.trace.mooncake import TraceRequest
from fleetgate.loadtest.bench.trace.prompts import prompt_text
from fleetgate.loadtest.bench.trace.usage import prompt_usage
from fleetgate.loadtest.streaming import StreamParser

DRAINED_ERROR = "still open when the replay's drain timed out"
KEEPALIVE_S = 2.0


@dataclass(frozen=True)
class TraceRecord:
    """One replayed request (times are ``time.perf_counter`` seconds)."""

    index: int
    router: int
    due: float
    started: float
    ended: float
    first_token: float | None = None
    tokens: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    expected_tokens: int = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def ttft(self) -> float | None:
        return None if self.first_token is None else self.first_token - self.started

    @property
    def lateness(self) -> float:
        """How long after its arrival time the request was actually sent (the client keeping up)."""
        return self.started - self.due


@dataclass
class ReplayPlan:
    """What to replay where: ``requests`` at ``arrival / speed``, spread over ``router_urls``."""

    requests: Sequence[TraceRequest]
    router_urls: Sequence[str]
    model: str
    dialect: Dialect
    speed: float = 1.0
    drain_timeout_s: float = 120.0


@dataclass(frozen=True)
class ReplayRun:
    records: list[TraceRecord]
    # Wall seconds from the first send to the last request's end.
    wall_seconds: float


async def _send(session: aiohttp.ClientSession, plan: ReplayPlan, request: TraceRequest, due: float) -> TraceRecord:
    router = request.index % len(plan.router_urls)
    url = plan.router_urls[router].rstrip("/") + plan.dialect.path
    data = plan.dialect.body(plan.model, prompt_text(request), request.output_length)
    started = time.perf_counter()
    parser = StreamParser(plan.dialect.name, started)

    def record(error: str | None) -> TraceRecord:
        result = parser.result
        usage = prompt_usage(plan.dialect.name, result.last_payload)
        return TraceRecord(index=request.index, router=router, due=due, started=started, ended=time.perf_counter(),
                           first_token=result.token_times[0] if result.token_times else None,
                           tokens=result.completion_tokens, prompt_tokens=usage.prompt_tokens if usage else 0,
                           cached_tokens=usage.cached_tokens if usage else 0,
                           expected_tokens=request.output_length, error=error)

    try:
        async with session.post(url, data=data, headers=plan.dialect.headers) as resp:
            if resp.status != 200:
                return record(f"HTTP {resp.status}: {(await resp.text())[:200]}")
            async for line in resp.content:
                parser.feed(line)
    except asyncio.CancelledError:
        return record(DRAINED_ERROR)
    except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
        return record(f"{type(exc).__name__}: {exc}")
    result = parser.result
    return record(result.error or (None if result.finished else "stream ended unfinished"))


def _session() -> aiohttp.ClientSession:
    # Idle connections are dropped before uvicorn's own 5 s keep-alive timeout closes them under a new request.
    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=None, keepalive_timeout=KEEPALIVE_S)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=600)
    return aiohttp.ClientSession(connector=connector, timeout=timeout)


async def warm_up(plan: ReplayPlan) -> list[TraceRecord]:
    """One short request of words no trace block holds to every router, one after the other."""
    async with _session() as session:
        # Negative indices: request -(i+1) goes to router (-(i+1)) mod R, i.e. each router once.
        return [await _send(session, plan, TraceRequest(-(i + 1), 0.0, 16, 1, ()), time.perf_counter())
                for i in range(len(plan.router_urls))]


async def replay(plan: ReplayPlan) -> ReplayRun:
    """Send every request of ``plan`` at its time, wait for them to finish (or the drain timeout)."""
    if not plan.router_urls:
        raise ValueError("a replay needs at least one router URL")
    async with _session() as session:
        began = time.perf_counter()
        tasks: list[asyncio.Task[TraceRecord]] = []
        for request in plan.requests:
            due = began + request.arrival_s / plan.speed
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(_send(session, plan, request, due)))
        _, pending = await asyncio.wait(tasks, timeout=plan.drain_timeout_s) if tasks else (set(), set())
        for task in pending:
            task.cancel()
        records = list(await asyncio.gather(*tasks))
    ended = max((r.ended for r in records), default=began)
    return ReplayRun(records=records, wall_seconds=max(0.0, ended - began))
