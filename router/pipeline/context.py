"""The one context of a request: what every step of the pipeline knows about one API call.

``router.pipeline.runner`` creates a ``RequestContext`` per call and runs its
steps over it; each step reads what the ones before it found and adds its own
(the caller's key, the parsed and canonical request, the chosen replica, the
open event stream, the folded completion, the outcome). Dialects get the same
object and read the facts they render (``request_id``, ``model``, ``created``,
``replica_id``); what one dialect keeps for itself during a call (the Responses
conversation) goes in ``dialect_state``, so dialect objects stay pure and shared.

Finish hooks are the work to do once the generation is folded and before the
last frame or the JSON body is sent (the Responses store write): steps append them to ``finish_hooks`` and the pipeline
runs them in order (``router.pipeline.finish_hooks``).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fleetgate.router.canonical.fold import Completion
from fleetgate.router.canonical.stats import GenerationClock
from fleetgate.router.errors import ApiError
from fleetgate.router.http_io import REPLICA_HEADER
from fleetgate.router.key_policy import KeyPolicy
from fleetgate.router.rate_limit import Limits
from fleetgate.router.request_metrics import CLIENT_CLOSED, RequestMetrics

if TYPE_CHECKING:
    from starlette.requests import Request

    from fleetgate.core.registry import ReplicaRecord
    from fleetgate.router.admission import Slot
    from fleetgate.router.auth import Caller
    from fleetgate.router.dialects.base import Dialect, StreamEncoder
    from fleetgate.router.dispatch import Generation
    from fleetgate.router.routing.policy import RoutingFacts
    from fleetgate.router.server_tools.plan import ToolPlan
    from fleetgate.router.state import RouterState
    from fleetgate.router.tracing import RequestTrace
    from fleetgate.v1 import replica_pb2 as pb

FinishHook = Callable[[Completion, "RequestContext"], Awaitable[None]]
"""Work on a folded, successful completion before its last frame or JSON body is sent; an ``ApiError`` it
raises becomes the call's error."""

Step = Callable[["RequestContext", "RouterState"], Awaitable[None]]
"""One named step of the pipeline (authenticate, parse, admit, ...), run over the context."""


@dataclass(eq=False)
class RequestContext:
    """Everything known about one API call, filled in step by step."""

    dialect: Dialect[Any]
    # Random id of this call: the canonical request id, and the base of the dialect's public ids.
    request_id: str
    # The HTTP request being answered (None in pure tests of a dialect).
    http: Request | None = None
    model: str = ""
    stream: bool = False
    # Unix seconds when the request arrived (OpenAI's `created`).
    created: int = field(default_factory=lambda: int(time.time()))
    # The API key that made the call ("" when auth is off), and its own rate limits.
    key_id: str = ""
    key_name: str = ""
    key_limits: Limits = Limits()
    # What the key may do beyond its rate limits (role, budgets, allowlist, caps, fair-share weight, priority).
    key_policy: KeyPolicy = KeyPolicy()
    # The caller asked for the ``stats`` object (router.canonical.stats); the pipeline adds it.
    wants_stats: bool = False
    # Headers the pipeline adds to every answer of the call (the key's rate-limit headers).
    response_headers: dict[str, str] = field(default_factory=dict)

    # The dialect's wire request, and the canonical request made from it.
    parsed: Any = None
    request: pb.GenerateRequest | None = None
    # The replica that served the previous turn, if the dialect knows one (its KV cache holds the prefix).
    affinity_replica: str | None = None
    # The caller's session, from the first session hint its request carries (router.canonical.session_hints),
    # and the routing facts the replica was chosen by.
    session_hint: str | None = None
    routing: RoutingFacts | None = None
    # The server-side tools the request uses (router.server_tools), None without any: its generation is a tool loop.
    tool_plan: ToolPlan | None = None
    # The call's place among its model's requests in flight (router.admission); the runner releases it.
    admission: Slot | None = None
    # The replica chosen first, the open generation on it, and the replica serving it now (after a retry).
    replica: ReplicaRecord | None = None
    event_stream: Generation | None = None
    replica_id: str = ""
    # A streamed answer's encoder, and the folded generation (while streaming: as far as it got).
    encoder: StreamEncoder | None = None
    completion: Completion | None = None
    finish_hooks: list[FinishHook] = field(default_factory=list)
    # Usage (router.usage): seconds the call waited in the admission queue, the key's rate-limit window its
    # tokens also go to ("" when the key has no token limit), and whether the call was charged already.
    queue_seconds: float = 0.0
    token_window: str = ""
    usage_recorded: bool = False
    # A streamed call's wait for its model's just-in-time load (router.elastic): the runner starts the stream
    # (keepalives), then awaits it before the admission queue.
    load_wait: Awaitable[None] | None = None
    # What the dialect keeps for itself during this call (the Responses conversation and final object).
    dialect_state: Any = None

    # The outcome the request's metrics record, once, when it ends: the HTTP status (499: the client went
    # away) and the error answered before any generation, if any.
    status: int = CLIENT_CLOSED
    error: ApiError | None = None
    observer: RequestMetrics = field(init=False)
    clock: GenerationClock = field(default_factory=GenerationClock)
    # The call's spans while tracing is on (router.tracing; the runner begins and ends it), else None.
    trace: RequestTrace | None = None

    def __post_init__(self) -> None:
        self.observer = RequestMetrics(self.dialect.name)

    def set_caller(self, caller: Caller) -> None:
        """The authenticated caller's key, limits and policy."""
        self.key_id, self.key_name = caller.key_id, caller.key_name
        self.key_limits, self.key_policy = caller.limits, caller.policy

    def fail(self, error: ApiError) -> ApiError:
        """The call ends with ``error`` before any generation was answered; returns it."""
        self.status, self.error = error.status, error
        return error

    def answer_headers(self) -> dict[str, str]:
        """Headers of every answer after dispatch: the rate-limit headers and the replica that served it."""
        served = {REPLICA_HEADER: self.replica_id} if self.replica_id else {}
        return {**self.response_headers, **served}
