"""Dispatching one canonical request to a replica, with one transparent retry before the first token.

``Dispatcher.choose_replica`` picks the replica to try first (the routing policy,
``router.routing``, over the ``RegistryView``'s healthy replicas; 404 for a model
nobody serves, 503 with ``Retry-After`` when no replica is healthy).
``Dispatcher.open_stream`` opens the gRPC ``Generate`` call on it and waits for
its first event:

- ``started``: returns an ``EventStream``, an async iterator of the remaining
  events (``.started``, ``.replica_id``, ``.model``), always ending with exactly
  one ``finish``;
- ``finish`` with an error: raises the mapped ``ApiError`` (400 context length,
  404 unknown model, ...).

A call that fails before any content event (connection refused, UNAVAILABLE,
a replica that died or refused as overloaded before its first token) is retried
once on another replica, transparently: the stream simply continues with the
new replica's events (its ``started`` is not repeated). ``read_ahead(timeout)``
waits for the first event after ``started`` without consuming it, so a retry
that happens meanwhile is already reflected in ``replica_id``. After the first content
event, a failure becomes ``finish(ERROR, ERROR_CODE_INTERNAL, "replica … failed
mid-stream")`` so each dialect renders its own error event. ``aclose()`` (a client
that went away) cancels the gRPC call, and the replica aborts the engine request.

``Dispatcher.embed`` makes an embeddings call (unary ``Embed``) on the chosen replica,
with the same one retry on another replica when it fails or is overloaded.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Protocol

import grpc

from fleetgate.core import events
from fleetgate.core.registry import ReplicaRecord
from fleetgate.router import metrics
from fleetgate.router.canonical.event_kinds import CONTENT_EVENTS
from fleetgate.router.channel_pool import ReplicaChannels
from fleetgate.router.errors import (
    ApiError,
    from_error_code,
    invalid_request,
    model_not_found,
    overloaded,
    state_store_unavailable,
)
from fleetgate.router.registry_view import RegistryView
from fleetgate.router.routing.in_flight import InFlight
from fleetgate.router.routing.policy import RoutingFacts, RoutingPolicy
from fleetgate.v1 import replica_pb2 as pb

log = logging.getLogger("fleetgate.router.dispatch")

MAX_ATTEMPTS = 2
COUNT_TOKENS_TIMEOUT_SECONDS = 30.0
ErrorCode = pb.ErrorCode
# A replica that refuses this way may be fine a moment later, and another one may take the request.
RETRYABLE_REFUSALS = frozenset({pb.ERROR_CODE_OVERLOADED})


class Dispatcher:
    def __init__(
        self,
        registry: RegistryView,
        policy: RoutingPolicy,
        in_flight: InFlight,
        channels: ReplicaChannels,
        *,
        retry_after_seconds: int,
    ) -> None:
        self.registry = registry
        self.policy = policy
        self.in_flight = in_flight
        self.channels = channels
        self.retry_after_seconds = retry_after_seconds

    async def choose_replica(self, facts: RoutingFacts) -> ReplicaRecord:
        """The replica to start a request with these routing facts on; see the module docstring."""
        if not self.registry.serves(facts.model):
            raise self.unknown_model(facts.model)
        record = await self.pick(facts)
        if record is None:
            raise overloaded(_no_healthy_replica(facts.model), self.retry_after_seconds)
        return record

    async def pick(self, facts: RoutingFacts, *, exclude: Sequence[str] = ()) -> ReplicaRecord | None:
        """A healthy replica of ``facts.model`` not in ``exclude``, chosen by the policy; None when there is none."""
        candidates = self.registry.healthy(facts.model, exclude=exclude)
        return await self.policy.choose(candidates, facts) if candidates else None

    async def open_stream(
        self, request: pb.GenerateRequest, replica: ReplicaRecord, facts: RoutingFacts,
        metadata: tuple[tuple[str, str], ...] = (),
    ) -> EventStream:
        """Start ``request`` on ``replica`` (another one if it fails before its first token; ``facts`` route the
        retry; every attempt's call also sends ``metadata``: the trace context); see the module docstring."""
        stream = EventStream(self, request, facts, metadata)
        first = await stream.connect(replica)
        if first.HasField("finish"):
            await stream.aclose()
            err = from_error_code(first.finish.error_code, first.finish.error_message)
            if first.finish.error_code == pb.ERROR_CODE_OVERLOADED:
                err.retry_after = self.retry_after_seconds
            raise err
        return stream

    def unknown_model(self, model: str) -> ApiError:
        """The error for a model the registry view does not know: 404, or 503 while the registry is unreadable."""
        if not self.registry.readable:
            return state_store_unavailable(self.retry_after_seconds)
        return model_not_found(model)

    async def count_tokens(self, request: pb.GenerateRequest) -> int:
        """Prompt tokens of ``request`` as a replica of its model renders it (retried once on another replica)."""
        if not self.registry.serves(request.model):
            raise self.unknown_model(request.model)
        tried: list[str] = []
        failure = ""
        while len(tried) < MAX_ATTEMPTS:
            record = await self.pick(RoutingFacts(request.model), exclude=tried)
            if record is None:
                break
            tried.append(record.replica_id)
            try:
                stub = self.channels.stub(record.address)
                reply = await stub.CountTokens(request, timeout=COUNT_TOKENS_TIMEOUT_SECONDS)
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                    raise invalid_request(exc.details() or "invalid request") from None
                self.registry.mark_failed(record)
                failure = f"replica {record.replica_id} failed to count tokens ({exc.code().name}: {exc.details()})"
                log.warning(failure)
                continue
            return int(reply.prompt_tokens)
        raise overloaded(failure or _no_healthy_replica(request.model), self.retry_after_seconds)

    async def embed(
        self, request: pb.EmbedRequest, replica: ReplicaRecord, facts: RoutingFacts,
        metadata: tuple[tuple[str, str], ...] = (),
    ) -> pb.EmbedResponse:
        """The embeddings of ``request`` from ``replica`` (the unary ``Embed``): tried once more on another replica
        when the call fails or the replica refuses as overloaded (``facts`` route it); any other refusal is raised
        as its ``ApiError``, naming the request field at fault."""
        call_metadata = self.channels.call_metadata(metadata) if metadata else None
        tried: list[str] = []
        record: ReplicaRecord | None = replica
        failure = ""
        while record is not None:
            tried.append(record.replica_id)
            reply, failure = await self._embed_on(record, request, call_metadata)
            if reply is not None:
                return reply
            if len(tried) >= MAX_ATTEMPTS:
                break
            metrics.RETRIES.labels(model=request.model).inc()
            log.warning("%s; retrying request %s on another replica", failure, request.request_id)
            record = await self.pick(facts, exclude=tried)
        raise overloaded(failure or _no_healthy_replica(request.model), self.retry_after_seconds)

    async def _embed_on(
        self, record: ReplicaRecord, request: pb.EmbedRequest, metadata: tuple[tuple[str, str], ...] | None
    ) -> tuple[pb.EmbedResponse | None, str]:
        """``(reply, "")`` from ``record``, or ``(None, why)`` when it failed or was overloaded (worth a retry);
        raises any other refusal."""
        self.in_flight.acquire(record)
        try:
            stub = self.channels.stub(record.address)
            reply = await (stub.Embed(request) if metadata is None else stub.Embed(request, metadata=metadata))
        except grpc.aio.AioRpcError as exc:
            self.registry.mark_failed(record)
            return None, f"replica {record.replica_id} failed to embed ({exc.code().name}: {exc.details()})"
        finally:
            self.in_flight.release(record)
        if not reply.error_code:
            return reply, ""
        err = from_error_code(reply.error_code, reply.error_message)
        err.param = reply.error_param or None
        if reply.error_code not in RETRYABLE_REFUSALS:
            raise err
        return None, f"replica {record.replica_id} refused the request: {reply.error_message}"


def _no_healthy_replica(model: str) -> str:
    return f"No healthy replica serves model {model!r} right now; retry later"


class Generation(Protocol):
    """What the pipeline reads of a generation in progress: an ``EventStream``, or a ``ToolLoop`` of several
    (router.server_tools) that shows as one."""

    started: pb.Started

    @property
    def record(self) -> ReplicaRecord | None: ...

    @property
    def replica_id(self) -> str: ...

    @property
    def next_ready(self) -> bool: ...

    @property
    def attempts(self) -> int: ...

    async def read_ahead(self, timeout: float) -> None: ...

    def __aiter__(self) -> AsyncIterator[pb.GenerateEvent]: ...

    async def aclose(self) -> None: ...


class EventStream:
    """The events of one request after ``started``; iterate it, and ``aclose()`` it when done."""

    def __init__(
        self, dispatcher: Dispatcher, request: pb.GenerateRequest, facts: RoutingFacts,
        metadata: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self._dispatcher = dispatcher
        self._request = request
        self._facts = facts
        # The calls' own metadata with the replica token (None: the stub's methods send the token alone).
        self._metadata = dispatcher.channels.call_metadata(metadata) if metadata else None
        self.model = request.model
        self.started = pb.Started()
        self.record: ReplicaRecord | None = None
        self._call: grpc.aio.UnaryStreamCall[pb.GenerateRequest, pb.GenerateEvent] | None = None
        self._tried: list[str] = []
        self._content_seen = False
        self._finished = False
        self._last_failure = ""
        # The next event, being read ahead of the iteration (read_ahead).
        self._ahead: asyncio.Future[pb.GenerateEvent] | None = None

    @property
    def replica_id(self) -> str:
        return self.record.replica_id if self.record else ""

    @property
    def attempts(self) -> int:
        return len(self._tried)

    # -- connecting --------------------------------------------------------------

    async def connect(self, record: ReplicaRecord | None, failure: str = "") -> pb.GenerateEvent:
        """The first event of a call on ``record``, or on another replica not tried yet when it fails before its
        first token: ``started``, or a ``finish`` with an error.

        ``failure`` says why the previous replica was left (a retry).
        """
        while True:
            if record is None:
                reason = f"{failure}, and no other healthy replica serves it"
                return events.error(ErrorCode.ERROR_CODE_OVERLOADED, reason)
            self._tried.append(record.replica_id)
            first, failure = await self._start_call(record)
            if first is not None and first.HasField("started"):
                self.started = first.started
                self._dispatcher.policy.started(record, self._facts)
                return first
            self._end_call()
            if first is not None and first.finish.error_code not in RETRYABLE_REFUSALS:
                return first
            if not self._may_retry(failure):
                return first if first is not None else events.error(ErrorCode.ERROR_CODE_OVERLOADED, failure)
            record = await self._dispatcher.pick(self._facts, exclude=self._tried)

    def _may_retry(self, failure: str) -> bool:
        """Whether the retry budget allows another replica after ``failure`` (counted in fleetgate_retries)."""
        if len(self._tried) >= MAX_ATTEMPTS:
            return False
        metrics.RETRIES.labels(model=self.model).inc()
        log.warning("%s; retrying request %s on another replica", failure, self._request.request_id)
        return True

    async def _start_call(self, record: ReplicaRecord) -> tuple[pb.GenerateEvent | None, str]:
        """Open the call on ``record``: ``(first event, "")``, ``(refusal, why)`` or ``(None, why)`` on failure."""
        d = self._dispatcher
        self.record = record
        d.in_flight.acquire(record)
        stub = d.channels.stub(record.address)
        if self._metadata is None:
            self._call = stub.Generate(self._request)
        else:
            self._call = stub.Generate(self._request, metadata=self._metadata)
        first = await self._read()
        if first is None:
            d.registry.mark_failed(record)
            return None, f"replica {record.replica_id} failed before its first token ({self._last_failure})"
        if first.HasField("finish") and first.finish.reason == pb.Finish.REASON_ERROR:
            return first, f"replica {record.replica_id} refused the request: {first.finish.error_message}"
        if not first.HasField("started"):
            return None, f"replica {record.replica_id} sent {first.WhichOneof('event')} before started"
        return first, ""

    async def _read(self) -> pb.GenerateEvent | None:
        """The next event of the open call, or None when the call failed or ended without a finish."""
        assert self._call is not None
        try:
            event = await self._call.read()
        except grpc.aio.AioRpcError as exc:
            self._last_failure = f"{exc.code().name}: {exc.details()}"
            return None
        if event is grpc.aio.EOF:
            self._last_failure = "the stream ended without a finish"
            return None
        return event  # type: ignore[return-value]

    def _end_call(self) -> None:
        """Cancel the open call if it still runs and release its in-flight slot."""
        if self._call is not None:
            if not self._call.done():
                self._call.cancel()
            self._call = None
            assert self.record is not None
            self._dispatcher.in_flight.release(self.record)

    # -- iterating ---------------------------------------------------------------

    def __aiter__(self) -> EventStream:
        return self

    async def read_ahead(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the next event (a retry before the first token happens
        here); iterating returns it as usual."""
        if self._ahead is None:
            self._ahead = asyncio.ensure_future(self._next())
        await asyncio.wait({self._ahead}, timeout=timeout)

    @property
    def next_ready(self) -> bool:
        """Whether the next event was read ahead already (iterating returns it without waiting)."""
        return self._ahead is not None and self._ahead.done()

    async def __anext__(self) -> pb.GenerateEvent:
        if self._ahead is not None:
            ahead, self._ahead = self._ahead, None
            return await ahead
        return await self._next()

    async def _next(self) -> pb.GenerateEvent:
        if self._finished or self._call is None:
            raise StopAsyncIteration
        while True:
            event = await self._read()
            if event is None:
                event = await self._recover()
                if event is None:
                    continue
            kind = event.WhichOneof("event")
            if kind == "started":
                continue
            if kind in CONTENT_EVENTS:
                self._content_seen = True
            if kind == "finish":
                self._finished = True
                self._end_call()
            return event

    async def _recover(self) -> pb.GenerateEvent | None:
        """After a failed read: None when the request moved to another replica, else the finish error to yield."""
        assert self.record is not None
        failed = self.record
        self._dispatcher.registry.mark_failed(failed)
        self._end_call()
        if self._content_seen:
            return events.error(
                ErrorCode.ERROR_CODE_INTERNAL, f"replica {failed.replica_id} failed mid-stream ({self._last_failure})"
            )
        failure = f"replica {failed.replica_id} failed before its first token ({self._last_failure})"
        if self._may_retry(failure):
            first = await self.connect(await self._dispatcher.pick(self._facts, exclude=self._tried), failure)
        else:
            first = events.error(ErrorCode.ERROR_CODE_OVERLOADED, failure)
        if first.HasField("started"):
            return None
        self._finished = True
        return first

    async def aclose(self) -> None:
        """Stop: cancels the gRPC call (the replica aborts the engine request). Idempotent."""
        self._finished = True
        ahead, self._ahead = self._ahead, None
        if ahead is not None and not ahead.cancel() and not ahead.cancelled():
            ahead.exception()  # already done: its outcome is dropped, and counts as seen
        self._end_call()
