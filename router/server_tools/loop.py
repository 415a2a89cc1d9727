"""The tool loop: one client-visible generation made of model turns and the server-side tool calls between them.

``ToolLoop`` wraps the request's first ``EventStream`` and shows the pipeline the same surface (``started``,
``replica_id``, ``read_ahead``, iteration, ``aclose``). It passes the model's output through, except calls of
server-side tools (``plan.hosted``), which it holds back; when a turn finishes with tool calls it runs the held
ones on a toolbox, one after the other, yielding one ``server_tool`` event each, appends the turn and the
results to the conversation (``calls.continuation``) and starts the next turn on the same replica. It ends with
one ``usage`` event, the sum of every turn's, and one ``finish``:

- the model answered (or called only the client's own tools: ``tool_calls``, the server-side results already
  shown): that turn's finish;
- a call needs the client's approval (MCP ``require_approval``): an ``mcp_approval_request`` event, then
  ``stop``; the client's next request answers it (``plan.prepare_server_tools``);
- ``tools.max_iterations`` turns were taken: the last one is offered no server-side tool, so the model answers;
- the request's ``max_tokens`` bounds the whole answer: each turn may generate what the turns before left of it,
  and when nothing is left the answer ends with ``length``; a turn cut at ``max_tokens`` runs none of its calls;
- a turn failed (the replica died, every replica refused): the error finish, after the usage so far.

Calls are counted and timed by ``Toolboxes.run`` (router metrics); the usage ledger counts the ``server_tool``
events of the completion.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TYPE_CHECKING

from fleetgate.core import events
from fleetgate.core.registry import ReplicaRecord
from fleetgate.core.tool_call_ids import new_tool_call_id
from fleetgate.router.canonical.fold import UsageCounts
from fleetgate.router.errors import ApiError, to_error_code
from fleetgate.router.routing.policy import RoutingFacts
from fleetgate.router.routing.prefix_chain import prefix_chain
from fleetgate.router.server_tools.calls import (
    HeldCall,
    HostedTool,
    approval_request_event,
    continuation,
    server_tool_event,
    tool_request,
)
from fleetgate.router.server_tools.plan import ToolPlan, offered_for_last_turn
from fleetgate.v1 import replica_pb2 as pb
from fleetgate.v1 import toolbox_pb2 as tpb

if TYPE_CHECKING:
    from fleetgate.router.dispatch import Generation
    from fleetgate.router.pipeline.context import RequestContext
    from fleetgate.router.state import RouterState

log = logging.getLogger("fleetgate.router.server_tools")
Reason = pb.Finish.Reason
# A turn that ends so has its server-side calls run (a model may end a turn of calls with a plain stop).
_CALLS_RUN_AFTER = frozenset({Reason.REASON_TOOL_CALLS, Reason.REASON_STOP})


class ToolLoop:
    def __init__(self, first: Generation, plan: ToolPlan, ctx: RequestContext, state: RouterState,
                 metadata: tuple[tuple[str, str], ...] = ()) -> None:
        self._stream = first
        self._plan = plan
        self._ctx = ctx
        self._state = state
        self._metadata = metadata
        self.started = first.started
        self._events = self._run()
        self._ahead: asyncio.Future[pb.GenerateEvent] | None = None
        self._closed = False
        # Model turns taken so far.
        self.turns = 1
        self._attempts = 0  # of the turns before the current one
        self._max_tokens: int | None = None  # the request's own, before later turns get what is left of it

    @property
    def record(self) -> ReplicaRecord | None:
        return self._stream.record

    @property
    def replica_id(self) -> str:
        return self._stream.replica_id

    @property
    def next_ready(self) -> bool:
        return self._ahead is not None and self._ahead.done()

    @property
    def attempts(self) -> int:
        """Replicas tried for the turns so far (one each, more after a retry)."""
        return self._attempts + self._stream.attempts

    async def read_ahead(self, timeout: float) -> None:
        if self._ahead is None:
            self._ahead = asyncio.ensure_future(anext(self._events))
        await asyncio.wait({self._ahead}, timeout=timeout)

    def __aiter__(self) -> AsyncIterator[pb.GenerateEvent]:
        return self

    async def __anext__(self) -> pb.GenerateEvent:
        if self._ahead is not None:
            ahead, self._ahead = self._ahead, None
            return await ahead
        if self._closed:
            raise StopAsyncIteration
        return await anext(self._events)

    async def aclose(self) -> None:
        """Stop: the turn running is cancelled on its replica (as an ``EventStream``'s is). Idempotent."""
        self._closed = True
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            # The turn read ahead runs the loop in a task of its own: it ends before the loop is closed.
            ahead.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await ahead
        await self._events.aclose()
        await self._stream.aclose()

    # ------------------------------------------------------------------ the loop

    async def _run(self) -> AsyncGenerator[pb.GenerateEvent, None]:
        for opening in self._plan.opening:
            yield opening
        usage = UsageCounts()
        while True:
            turn = _Turn()
            async for event in self._stream:
                kind = event.WhichOneof("event")
                if turn.holds(event, kind, self._plan):
                    continue
                if kind == "usage":
                    usage = usage.plus(event.usage)
                    continue
                if kind == "finish":
                    turn.finish = event
                    break
                yield event
            finish = turn.finish or events.error(pb.ERROR_CODE_INTERNAL, "The generation ended without a finish")
            if finish.finish.reason not in _CALLS_RUN_AFTER or not turn.held:
                # The answer (an error, or a turn cut at max_tokens: a call it was writing is not run).
                yield pb.GenerateEvent(usage=usage.to_pb())
                yield finish
                return
            ran: list[tuple[HeldCall, pb.ServerToolCall]] = []
            waiting = False
            for call in sorted(turn.held.values(), key=lambda held: held.index):
                tool = self._plan.hosted[call.name]
                if tool.needs_approval:
                    waiting = True
                    yield approval_request_event(call, tool)
                    continue
                shown = server_tool_event(call, tool, await self._call(call, tool))
                ran.append((call, shown.server_tool))
                yield shown
            if waiting or turn.client_calls or self.turns >= self._plan.max_iterations:
                yield pb.GenerateEvent(usage=usage.to_pb())
                yield events.finish(Reason.REASON_TOOL_CALLS if turn.client_calls else Reason.REASON_STOP)
                return
            if self._out_of_tokens(usage):
                yield pb.GenerateEvent(usage=usage.to_pb())
                yield events.finish(Reason.REASON_LENGTH)
                return
            failure = await self._next_turn(turn, ran)
            if failure is not None:
                yield pb.GenerateEvent(usage=usage.to_pb())
                yield events.error(to_error_code(failure), failure.message)
                return

    def _out_of_tokens(self, usage: UsageCounts) -> bool:
        """Whether the request's ``max_tokens`` is spent; else the next turn may generate what is left of it
        (the bound is the whole answer's, every turn's output together)."""
        request = self._ctx.request
        assert request is not None
        if not request.sampling.HasField("max_tokens"):
            return False
        if self._max_tokens is None:
            self._max_tokens = request.sampling.max_tokens
        left = self._max_tokens - usage.completion_tokens
        if left <= 0:
            return True
        request.sampling.max_tokens = left
        return False

    async def _call(self, call: HeldCall, tool: HostedTool) -> tpb.ToolResult:
        """Run one call on a toolbox."""
        ctx, state = self._ctx, self._state
        request = tool_request(call, tool, request_id=ctx.request_id, key_id=ctx.key_id,
                               session_id=self._plan.session_id)
        return await state.server_tools.run(request) if state.server_tools is not None else _no_toolboxes()

    async def _next_turn(self, turn: _Turn, ran: list[tuple[HeldCall, pb.ServerToolCall]]) -> ApiError | None:
        """The conversation grows by the turn and its results, and the next turn starts on the same replica."""
        ctx, state = self._ctx, self._state
        request = ctx.request
        assert request is not None
        request.messages.extend(continuation("".join(turn.text), "".join(turn.reasoning), ran))
        self.turns += 1
        # A forced choice applied to the first turn; later turns choose freely (else the model is forced forever).
        if request.tool_choice.mode in (pb.ToolChoice.MODE_REQUIRED, pb.ToolChoice.MODE_NAMED):
            request.tool_choice.CopyFrom(pb.ToolChoice(mode=pb.ToolChoice.MODE_AUTO))
        if self.turns >= self._plan.max_iterations:
            offered_for_last_turn(request, self._plan)
        chain = None
        if state.routing.uses_prefix_chain:
            chain = prefix_chain(request, state.config.router.prefix_routing.block_bytes)
            request.prefix.CopyFrom(chain.to_proto())
        facts = RoutingFacts(request.model, self.replica_id or None, ctx.session_hint, request, chain)
        try:
            record = self._stream.record or await state.dispatcher.choose_replica(facts)
            await self._stream.aclose()
            self._attempts += self._stream.attempts
            self._stream = await state.dispatcher.open_stream(request, record, facts, self._metadata)
        except ApiError as err:
            log.warning("turn %d of request %s could not start: %s", self.turns, ctx.request_id, err.message)
            return err
        return None


class _Turn:
    """One model turn as the loop sees it."""

    def __init__(self) -> None:
        self.held: dict[int, HeldCall] = {}
        self.client_calls = False
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.finish: pb.GenerateEvent | None = None

    def holds(self, event: pb.GenerateEvent, kind: str | None, plan: ToolPlan) -> bool:
        """Whether ``event`` belongs to a call of a server-side tool (held back); notes the turn's output."""
        if kind == "tool_call_start":
            start = event.tool_call_start
            if start.name in plan.hosted:
                self.held[start.index] = HeldCall(start.index, start.id or new_tool_call_id(), start.name)
                return True
            self.client_calls = True
        elif kind == "tool_call_delta":
            held = self.held.get(event.tool_call_delta.index)
            if held is not None:
                held.arguments += event.tool_call_delta.delta
                return True
        elif kind == "tool_call_end":
            return event.tool_call_end.index in self.held
        elif kind == "text":
            self.text.append(event.text.text)
        elif kind == "reasoning":
            self.reasoning.append(event.reasoning.text)
        return False


def _no_toolboxes() -> tpb.ToolResult:
    return tpb.ToolResult(output="The tool could not run: server-side tools are off.", is_error=True,
                          outcome="unavailable")
