"""Steps: parse the body with the dialect, then translate it into the canonical request.

``parse``: the body (413 over ``router.max_body_bytes``, 400 malformed JSON) ->
``dialect.parse`` (400 naming the field) -> the requested model, whether to
stream, whether the caller asked for the ``stats`` object.

``translate``: ``dialect.to_canonical`` (given the router's settings) -> the
canonical request, with the call's id, key and key's priority filled in, checked against the
model: unknown (404, or 503 while the registry is unreadable), of the other task (400: a chat
request for an embedding model, an embeddings request for a generation model) and images it
cannot take (400); and the caller's session hint (``ctx.session_hint``) from the
HTTP headers and the dialect's ``session_fields`` (``router.canonical.session_hints``;
a Responses WebSocket call has no HTTP request of its own: its body's hints only).
Translate runs for every call of every dialect, HTTP or WebSocket, so this is the
one place the hint is set.
"""

from __future__ import annotations

from fleetgate.router.canonical.content import check_images
from fleetgate.router.canonical.session_hints import session_hint
from fleetgate.router.canonical.stats import wants_stats
from fleetgate.router.errors import wrong_task
from fleetgate.router.http_io import read_json_body
from fleetgate.router.pipeline.context import RequestContext
from fleetgate.router.state import RouterState


async def parse(ctx: RequestContext, state: RouterState) -> None:
    assert ctx.http is not None
    body = await read_json_body(ctx.http, state.config.router.max_body_bytes)
    ctx.wants_stats = wants_stats(ctx.http.headers, body)
    ctx.parsed = ctx.dialect.parse(body)
    ctx.model = ctx.dialect.model_name(ctx.parsed)
    ctx.stream = ctx.dialect.wants_stream(ctx.parsed)


async def translate(ctx: RequestContext, state: RouterState) -> None:
    canonical = ctx.dialect.to_canonical(ctx.parsed, ctx, state.config.router)
    canonical.request_id = ctx.request_id
    canonical.caller.key_id = ctx.key_id
    canonical.priority = ctx.key_policy.priority  # the engine's scheduler may order by it (GenerateRequest.priority)
    if not canonical.model:
        canonical.model = ctx.model
    view = state.registry.model(canonical.model)
    if view is None:
        raise state.dispatcher.unknown_model(canonical.model)
    if view.capabilities.embeddings != (ctx.dialect.task == "embed"):
        raise wrong_task(canonical.model, embedding_model=view.capabilities.embeddings)
    check_images(canonical, accepts_images=view.capabilities.vision)
    ctx.request = canonical
    headers = ctx.http.headers if ctx.http is not None else {}
    ctx.session_hint = session_hint(headers, ctx.dialect.session_fields(ctx.parsed))
