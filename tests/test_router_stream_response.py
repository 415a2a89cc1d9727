"""``EventStreamResponse`` as an ASGI server drives it: the messages it sends, and a client that goes away.

The end-to-end counterpart (the replica aborts when a streaming client leaves)
is in test_router_failover.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from fleetgate.router.stream_response import EventStreamResponse, FinalChunk, Keepalive


class Client:
    """An ASGI peer: records what is sent; ``leave()`` makes ``receive`` report the disconnect."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self._left = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        await self._left.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    def leave(self) -> None:
        self._left.set()

    def bodies(self) -> list[tuple[bytes, bool]]:
        return [(m["body"], m["more_body"]) for m in self.sent if m["type"] == "http.response.body"]


SCOPE = {"type": "http", "asgi": {"spec_version": "2.3"}}


async def test_chunks_then_a_final_chunk_sent_with_the_end_of_the_response() -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b"one"
        yield FinalChunk(b"two")

    client = Client()
    await EventStreamResponse(body(), media_type="text/event-stream")(SCOPE, client.receive, client.send)
    assert client.sent[0]["type"] == "http.response.start" and client.sent[0]["status"] == 200
    assert client.bodies() == [(b"one", True), (b"two", False)]


async def test_without_a_final_chunk_the_end_is_an_empty_body() -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b"only"

    client = Client()
    await EventStreamResponse(body())(SCOPE, client.receive, client.send)
    assert client.bodies() == [(b"only", True), (b"", False)]


async def test_client_leaving_mid_stream_stops_the_body_and_the_response_ends_quietly() -> None:
    cleaned_up = asyncio.Event()
    client = Client()

    async def body() -> AsyncIterator[bytes]:
        try:
            yield b"first"
            client.leave()
            await asyncio.sleep(60)  # waiting for the next token
            yield b"never"
        finally:
            cleaned_up.set()

    await asyncio.wait_for(EventStreamResponse(body())(SCOPE, client.receive, client.send), timeout=5)
    assert cleaned_up.is_set()
    assert client.bodies() == [(b"first", True)]
    assert asyncio.current_task().cancelling() == 0


async def test_other_cancellations_propagate() -> None:
    client = Client()

    async def body() -> AsyncIterator[bytes]:
        yield b"first"
        await asyncio.sleep(60)
        yield FinalChunk(b"never")

    serving = asyncio.ensure_future(EventStreamResponse(body())(SCOPE, client.receive, client.send))
    await asyncio.sleep(0.05)
    serving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await serving


async def test_keepalive_frames_only_while_nothing_is_sent() -> None:
    client = Client()

    async def body() -> AsyncIterator[bytes]:
        yield b"start"
        await asyncio.sleep(0.3)  # a slow first token: pings
        for _ in range(10):  # tokens without a pause: no ping between them
            yield b"token"
        yield FinalChunk(b"end")

    response = EventStreamResponse(body(), keepalive=Keepalive(interval_seconds=0.05, frame=b"ping"))
    await response(SCOPE, client.receive, client.send)
    sent = [chunk for chunk, _ in client.bodies()]
    assert sent[0] == b"start" and sent[-1] == b"end"
    first_token = sent.index(b"token")
    assert sent[1:first_token] and set(sent[1:first_token]) == {b"ping"}
    assert sent[first_token:-1] == [b"token"] * 10
