"""``EventStreamResponse``: a streamed (SSE) response that watches the client with one plain task.

For ASGI servers before spec 2.4 (uvicorn reports 2.3), Starlette's
``StreamingResponse`` runs every response in an anyio task group beside a second
task listening for ``http.disconnect``; anyio's cancel-scope bookkeeping costs
~55 µs per response here, most of a streamed request's framework overhead. This
response does the same with one asyncio task, the watcher:

- when the client disconnects while the body is being streamed, the task
  streaming it is cancelled (so the body generator's ``finally`` runs: the gRPC
  call is cancelled and the replica aborts), and that cancellation ends here, as
  it ends in Starlette's task group. Any other cancellation (server shutdown) and
  any exception propagate unchanged;
- with a ``Keepalive``, it sends the keep-alive frame whenever nothing was sent
  for its interval (Anthropic's ``ping`` while a model is slow), so reading the
  body never waits on a timer: a stream's tokens cost nothing extra.

A body may end with a ``FinalChunk``: it is sent together with the end of the
response (one write instead of two). The generator may still clean up after
yielding it; the client leaving then cancels nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable
from dataclasses import dataclass

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send


class FinalChunk(bytes):
    """The last chunk of a body; nothing may follow it."""


@dataclass(frozen=True)
class Keepalive:
    """Send ``frame`` whenever nothing was sent for ``interval_seconds``."""

    interval_seconds: float
    frame: bytes


class EventStreamResponse(StreamingResponse):
    def __init__(self, content: AsyncIterable[bytes], *, keepalive: Keepalive | None = None, **kwargs: object) -> None:
        super().__init__(content, **kwargs)  # type: ignore[arg-type]
        self.keepalive = keepalive

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        streaming = asyncio.current_task()
        assert streaming is not None
        watcher = _Watcher(receive, send, streaming, self.keepalive)
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            ended = False
            async for chunk in self.body_iterator:
                ended = isinstance(chunk, FinalChunk)
                if ended:
                    watcher.stop()
                await send({"type": "http.response.body", "body": chunk, "more_body": not ended})
                watcher.sent()
            if not ended:
                watcher.stop()
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not watcher.cancelled_streaming or streaming.uncancel() > 0:
                raise
            # Cancelled while sending (a slow client's full buffer): the body did not see it; close it now.
            await _close(self.body_iterator)
        finally:
            watcher.stop()
        if self.background is not None:
            await self.background()


class _Watcher:
    """Until ``stop()``: cancels ``streaming`` when the client disconnects, and sends the keep-alive frames."""

    def __init__(
        self, receive: Receive, send: Send, streaming: asyncio.Task[object], keepalive: Keepalive | None
    ) -> None:
        self.cancelled_streaming = False
        self._send = send
        self._streaming = streaming
        self._keepalive = keepalive
        self._loop = asyncio.get_running_loop()
        self._last_sent = self._loop.time()
        self._stopped = False
        self._task = asyncio.ensure_future(self._watch(receive))

    def sent(self) -> None:
        """A chunk went out."""
        if self._keepalive is not None:
            self._last_sent = self._loop.time()

    async def _watch(self, receive: Receive) -> None:
        await self._until_disconnect(receive)
        if not self._stopped:
            self.cancelled_streaming = True
            self._streaming.cancel()

    async def _until_disconnect(self, receive: Receive) -> None:
        if self._keepalive is None:
            while (await receive())["type"] != "http.disconnect":
                pass
            return
        interval, frame = self._keepalive.interval_seconds, self._keepalive.frame
        while True:
            quiet_until = self._last_sent + interval
            try:
                message = await asyncio.wait_for(receive(), timeout=max(quiet_until - self._loop.time(), 0))
            except TimeoutError:
                if self._loop.time() >= self._last_sent + interval:
                    await self._send({"type": "http.response.body", "body": frame, "more_body": True})
                    self.sent()
                continue
            if message["type"] == "http.disconnect":
                return

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self._task.cancel()


async def _close(body: object) -> None:
    aclose = getattr(body, "aclose", None)
    if aclose is not None:
        await aclose()
