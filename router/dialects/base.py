"""The dialect adapter interface: how an API dialect plugs into the router.

A dialect (Chat Completions, Completions, Anthropic Messages, Responses) is PURE
translation, one shared object per dialect. It never touches Redis, gRPC or the
HTTP request; the request pipeline (``router.pipeline.runner``) does auth, body
reading, admission, dispatch, retries, metrics and disconnects, and calls the
adapter at four points, each time with the call's ``RequestContext``
(``router.pipeline.context``: the request id, model, ``created``, the replica
serving it; what the dialect keeps for itself during one call goes in
``ctx.dialect_state``, never on the dialect object):

1. ``parse(body)``: the decoded JSON body -> the dialect's pydantic wire model
   (``protocol.py`` of the dialect, extra fields allowed). The default validates
   ``wire_model`` and turns a ``ValidationError`` into a 400 naming the field.
   ``model_name`` and ``wants_stream`` read two facts the pipeline needs from it
   (by default the ``model`` and ``stream`` fields).
2. ``to_canonical(request, ctx, settings)``: wire model -> ``pb.GenerateRequest``;
   ``settings`` is the router's configuration (``RouterConfig``: what a
   translation depends on, such as ``claude_code_billing_header``). Raise
   ``router.errors.invalid_request(...)`` for anything the schema could not catch.
   The pipeline fills ``request_id`` and ``caller.key_id`` itself and checks images
   against the model's capabilities afterwards. ``session_fields(request)`` reads
   the body fields that may name the caller's session (``prompt_cache_key``,
   ``metadata.user_id``, ``safety_identifier``, ``user``: whichever the dialect
   has); the pipeline adds the headers and sets ``ctx.session_hint``
   (``router.canonical.session_hints``).
3. ``render_json(request, completion, ctx)``: the folded ``Completion`` (see
   ``router.canonical.fold``) -> the non-streaming JSON body. A completion that
   carries an error never reaches it: the pipeline answers with that error. A
   dialect with several output blocks or items renders ``completion.segments``
   in order (the same segments its stream encoder shows). The pipeline adds the
   opt-in ``stats`` object and the ``x-fleetgate-replica`` header itself.
4. ``stream_encoder(request, ctx)``: a fresh ``StreamEncoder`` for one streamed
   response. The pipeline feeds it every canonical event with the event's segment
   steps from its ``CompletionFolder`` (encoders that show output blocks or items
   render the steps, so a token is segmented once), the ``started`` event first
   and exactly one ``finish`` last, whose steps also go to ``settle`` before the
   finish hooks run (a mid-stream failure arrives as a
   ``finish`` with reason ERROR: render the dialect's own error event for it,
   from the dialect's error body of ``router.errors.from_error_code(...)``),
   then calls ``close()`` once. Each call
   returns all frames it makes as one ``bytes`` chunk (one write to the client),
   built with ``router.canonical.sse`` from plain dicts: streams are the hot
   path, so per-token payloads are not SDK objects (tests validate them against
   the SDK types). For an encoder with ``wants_keepalive``, its ``keepalive()``
   frame is sent whenever nothing was sent for ``router.ping_interval_seconds``
   (Anthropic's ``ping``).

Each dialect renders its own errors and names its own rate-limit headers
(``error_body``, ``rate_limit_headers``, ``budget_headers``; the OpenAI dialects inherit
``router.dialects.openai_shape.OpenAIShape``, Messages
``router.dialects.messages.shape.AnthropicShape``). Errors found before a stream
starts are raised as ``ApiError``; the router's exception handlers answer them
with the ``error_body`` of the dialect that owns the route (its ``routes.py``
makes its ``APIRouter`` with ``router.error_responses.dialect_router``), a
mid-stream failure with the encoder's error event.

Route handlers are one line: ``return await runner.serve(request, MY_DIALECT)``.
The embeddings dialect (``router.dialects.embeddings``, ``task = "embed"``) is
never folded nor streamed: its route runs ``runner.embed``, whose canonical
request only carries what key policy, admission and routing read, and whose
answer the dialect renders from the replica's ``EmbedResponse``.
A dialect that needs I/O around generation (the Responses store) passes
``prepare=`` to ``serve``: a pipeline step that runs before the translation. It
loads what it needs onto the context (the Responses history in
``ctx.dialect_state``, an affinity replica in ``ctx.affinity_replica``) and may
append finish hooks to ``ctx.finish_hooks``, which run after the last event is
folded and before the last frame or the JSON body is sent.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from fleetgate.core.config import RouterConfig
from fleetgate.router.canonical import sse
from fleetgate.router.canonical.fold import Completion
from fleetgate.router.canonical.segments import Step
from fleetgate.router.canonical.session_hints import NO_SESSION_FIELDS, SessionFields
from fleetgate.router.errors import ApiError, from_validation_error, invalid_request
from fleetgate.router.pipeline.context import RequestContext
from fleetgate.router.rate_limit import Limits, WindowReading
from fleetgate.v1 import replica_pb2 as pb

if TYPE_CHECKING:
    from fleetgate.router.server_tools.declared import ServerToolRequest
    from fleetgate.router.usage.budgets import BudgetStanding

RequestT = TypeVar("RequestT", bound=BaseModel)


class StreamEncoder(abc.ABC):
    """Canonical events of one streamed response -> the dialect's SSE frames."""

    # True: keepalive() is sent whenever nothing was sent for router.ping_interval_seconds.
    wants_keepalive: ClassVar[bool] = False

    @abc.abstractmethod
    def encode(self, event: pb.GenerateEvent, steps: list[Step]) -> bytes:
        """The frames for one event (``started`` first, ``finish`` last) as one chunk; may be empty.

        ``steps`` are the event's segment steps as the pipeline's folder made them (the output blocks or
        items it opens, grows and closes): encoders that show blocks render them, the others the event."""

    def settle(self, steps: list[Step]) -> None:  # noqa: B027 (a hook with a default: nothing to settle)
        """The ``finish`` event's steps, before the finish hooks run and before ``encode`` gets them: an
        encoder whose final object a hook reads (the Responses store) settles it here."""

    def close(self) -> bytes:
        """The frames after the last event (OpenAI's ``data: [DONE]``)."""
        return b""

    def keepalive(self) -> bytes:
        """A frame to send while the stream is quiet (Anthropic ``ping``); used when ``wants_keepalive``."""
        raise NotImplementedError


class Dialect(abc.ABC, Generic[RequestT]):
    """One API dialect: pure translation between its wire format and the canonical request / events."""

    # Label in metrics and logs: chat, completions, messages, responses, embeddings.
    name: ClassVar[str]
    # The kind of model it serves (a model's config `task`): a request for a model of the other kind is a 400.
    task: ClassVar[Literal["generate", "embed"]] = "generate"
    # The pydantic wire model of the request body.
    wire_model: ClassVar[type[BaseModel]]

    def parse(self, body: Any) -> RequestT:
        if not isinstance(body, dict):
            raise invalid_request("The request body must be a JSON object")
        try:
            return self.wire_model.model_validate(body)  # type: ignore[return-value]
        except ValidationError as exc:
            raise from_validation_error(exc, body=body) from None

    def loading_keepalive(self) -> bytes:
        """The frame a stream sends while its model loads just in time (router.elastic): an SSE comment."""
        return sse.comment_frame("keepalive")

    def model_name(self, request: RequestT) -> str:
        """The requested model (default: the wire model's ``model`` field)."""
        return str(getattr(request, "model"))  # noqa: B009 (RequestT: any wire model; mypy knows no field)

    def wants_stream(self, request: RequestT) -> bool:
        """Whether to answer with SSE (default: the wire model's ``stream`` field)."""
        return bool(getattr(request, "stream", False))

    @abc.abstractmethod
    def to_canonical(self, request: RequestT, ctx: RequestContext, settings: RouterConfig) -> pb.GenerateRequest: ...

    def session_fields(self, request: RequestT) -> SessionFields:
        """The request's body fields that may name its session (default: none)."""
        return NO_SESSION_FIELDS

    def server_tools(self, request: RequestT, ctx: RequestContext) -> ServerToolRequest | None:
        """What the request asks of server-side tools (``router.server_tools``), read from its own fields
        (default: nothing)."""
        return None

    @abc.abstractmethod
    def render_json(self, request: RequestT, completion: Completion, ctx: RequestContext) -> dict[str, Any]: ...

    @abc.abstractmethod
    def stream_encoder(self, request: RequestT, ctx: RequestContext) -> StreamEncoder: ...

    @abc.abstractmethod
    def error_body(self, err: ApiError) -> dict[str, Any]:
        """The JSON body of ``err`` in this dialect's shape (every error answer of its routes)."""

    @abc.abstractmethod
    def rate_limit_headers(self, limits: Limits, reading: WindowReading, now: float) -> dict[str, str]:
        """The headers telling a key with ``limits`` where its window stands (``reading``; Unix time ``now``)."""

    @abc.abstractmethod
    def budget_headers(self, standings: Sequence[BudgetStanding], now: float) -> dict[str, str]:
        """The headers telling a key with token budgets where each stands (``router.usage.budgets``)."""
