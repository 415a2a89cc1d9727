"""The admin API's routes (OpenAI's error shape), every one for API keys with the ``admin`` role only.

    POST   /v1/admin/keys                 create a key: its settings and, this once, its secret (201)
    GET    /v1/admin/keys                 every key, oldest first (revoked ones too)
    GET    /v1/admin/keys/{id}            one key
    PATCH  /v1/admin/keys/{id}            change its name, role, owner, rpm / tpm, budgets, models, max_tokens,
                                          weight, priority (router/admin/bodies.py)
    POST   /v1/admin/keys/{id}/revoke     revoke it (it stays listed)
    POST   /v1/admin/keys/{id}/rotate     a new secret, shown this once; the old one stops working at once
    GET    /v1/admin/usage                the usage ledger: ?key=&model=&since=&until= (UTC days), &daily=true,
                                          &format=json|csv
    GET    /v1/admin/audit                the audit log, newest first: ?since=&until=&limit=&key=&action=

401 for a missing, unknown or revoked key; 403 ``permission_error`` for a key
without the admin role on every route, and on every route when ``router.auth``
is false (no caller has a role then: the admin API is off); 404 for an unknown
key id; 400 naming the bad field or query parameter. No answer holds a secret or
hash but the one-time ``secret`` of create and rotate. Each change is recorded in
the audit log (``router/audit.py``) with the admin key's id and name and the
client's address.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.responses import Response

from fleetgate.router.admin.bodies import KeyCreateBody, KeyUpdateBody
from fleetgate.router.audit import Actor, AuditLog, parse_time
from fleetgate.router.auth import Caller, KeyInfo, KeyLookupError, NameTakenError, authenticate
from fleetgate.router.dialects.openai_shape import OPENAI_SHAPE
from fleetgate.router.error_responses import dialect_router
from fleetgate.router.errors import ApiError, ErrorKind, echoed, invalid_request, not_found
from fleetgate.router.http_io import json_response, read_json_body
from fleetgate.router.key_admin import KeyAdmin, key_view
from fleetgate.router.state import RouterState, get_state
from fleetgate.router.usage.report import default_since, read_usage, render

ADMIN_PREFIX = "/v1/admin"
ADMIN_ROLE_CODE = "admin_role_required"
MAX_AUDIT_LIMIT = 1000
DEFAULT_AUDIT_LIMIT = 100

routes = dialect_router(OPENAI_SHAPE)


def permission_denied(message: str) -> ApiError:
    return ApiError(403, ErrorKind.PERMISSION, message, code=ADMIN_ROLE_CODE)


async def require_admin(request: Request) -> Caller:
    """The caller, when its key has the admin role: 401 without a valid key, 403 without the role."""
    state = get_state(request)
    if not state.config.router.auth:
        raise permission_denied("The admin API is off: router.auth is false, so no caller has the admin role")
    caller = await authenticate(request, state.keys, required=True)
    if not caller.policy.is_admin:
        raise permission_denied(f"{request.url.path} needs an API key with the admin role; this key "
                                f"({caller.key_id}) has the role {caller.policy.role!r}")
    return caller


Admin = Annotated[Caller, Depends(require_admin)]


def _admin(state: RouterState) -> KeyAdmin:
    return KeyAdmin(state.keys, AuditLog(state.redis, max_entries=state.config.router.audit_max_entries))


def _actor(request: Request, caller: Caller) -> Actor:
    client = request.client.host if request.client else ""
    return Actor(id=caller.key_id, name=caller.key_name, via="api", client=client,
                 forwarded_for=request.headers.get("x-forwarded-for", ""))


async def _key(state: RouterState, key_id: str) -> KeyInfo:
    """The key with this id, or a 404 (names are not looked up here: ids only)."""
    info = await state.keys.get(key_id)
    if info is None:
        raise not_found(f"No API key with id {echoed(key_id)}", "key_id", code="key_not_found")
    return info


def _setting_error(exc: ValueError) -> ApiError:
    return invalid_request(str(exc), "name" if isinstance(exc, NameTakenError) else None)


@routes.post(ADMIN_PREFIX + "/keys")
async def create_key(request: Request, caller: Admin) -> Response:
    state = get_state(request)
    body = KeyCreateBody.model_validate(await read_json_body(request, state.config.router.max_body_bytes))
    try:
        secret, info = await _admin(state).create(_actor(request, caller), body.name, body.patch())
    except ValueError as exc:
        raise _setting_error(exc) from None
    return json_response({**key_view(info), "secret": secret}, status=201)


@routes.get(ADMIN_PREFIX + "/keys")
async def list_keys(request: Request, caller: Admin) -> Response:
    keys = await get_state(request).keys.list()
    return json_response({"object": "list", "data": [key_view(k) for k in keys]})


@routes.get(ADMIN_PREFIX + "/keys/{key_id}")
async def get_key(key_id: str, request: Request, caller: Admin) -> Response:
    return json_response(key_view(await _key(get_state(request), key_id)))


@routes.patch(ADMIN_PREFIX + "/keys/{key_id}")
async def update_key(key_id: str, request: Request, caller: Admin) -> Response:
    state = get_state(request)
    await _key(state, key_id)
    body = KeyUpdateBody.model_validate(await read_json_body(request, state.config.router.max_body_bytes))
    try:
        _, info = await _admin(state).update(_actor(request, caller), key_id, body.patch())
    except KeyLookupError:
        raise not_found(f"No API key with id {echoed(key_id)}", "key_id", code="key_not_found") from None
    except ValueError as exc:
        raise _setting_error(exc) from None
    return json_response(key_view(info))


@routes.post(ADMIN_PREFIX + "/keys/{key_id}/revoke")
async def revoke_key(key_id: str, request: Request, caller: Admin) -> Response:
    state = get_state(request)
    await _key(state, key_id)
    return json_response(key_view(await _admin(state).revoke(_actor(request, caller), key_id)))


@routes.post(ADMIN_PREFIX + "/keys/{key_id}/rotate")
async def rotate_key(key_id: str, request: Request, caller: Admin) -> Response:
    state = get_state(request)
    await _key(state, key_id)
    try:
        secret, info = await _admin(state).rotate(_actor(request, caller), key_id)
    except ValueError as exc:  # KeyRevokedError
        raise invalid_request(str(exc), "key_id", code="key_revoked") from None
    return json_response({**key_view(info), "secret": secret})


def _day(request: Request, name: str, default: date) -> date:
    text = request.query_params.get(name)
    if text is None:
        return default
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise invalid_request(f"{name} must be a UTC day as YYYY-MM-DD, got {echoed(text)}", name) from None


def _flag(request: Request, name: str) -> bool:
    text = request.query_params.get(name, "false").lower()
    if text not in ("true", "false", "1", "0"):
        raise invalid_request(f"{name} must be true or false, got {echoed(text)}", name)
    return text in ("true", "1")


@routes.get(ADMIN_PREFIX + "/usage")
async def read_usage_route(request: Request, caller: Admin) -> Response:
    state = get_state(request)
    query = request.query_params
    today = datetime.now(UTC).date()
    since, until = _day(request, "since", default_since(today)), _day(request, "until", today)
    if since > until:
        raise invalid_request(f"since {since} is after until {until}", "since")
    fmt = query.get("format", "json")
    if fmt not in ("json", "csv"):
        raise invalid_request(f"format must be json or csv, got {echoed(fmt)}", "format")
    daily = _flag(request, "daily")
    try:
        rows = await read_usage(state.usage, state.keys, key=query.get("key"), model=query.get("model"), since=since,
                                until=until, daily=daily)
    except KeyLookupError as exc:
        raise not_found(str(exc), "key", code="key_not_found") from None
    if fmt == "csv":
        return Response(render(rows, "csv", daily=daily) + "\n", media_type="text/csv")
    return json_response({"object": "list", "since": since.isoformat(), "until": until.isoformat(), "daily": daily,
                          "data": rows})


def _moment(request: Request, name: str, *, end_of_day: bool) -> float | None:
    text = request.query_params.get(name)
    if text is None:
        return None
    try:
        return parse_time(text, end_of_day=end_of_day)
    except ValueError as exc:
        raise invalid_request(f"{name}: {exc}", name) from None


@routes.get(ADMIN_PREFIX + "/audit")
async def read_audit(request: Request, caller: Admin) -> Response:
    state = get_state(request)
    query = request.query_params
    limit_text = query.get("limit", str(DEFAULT_AUDIT_LIMIT))
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_AUDIT_LIMIT:
        raise invalid_request(f"limit must be a number from 1 to {MAX_AUDIT_LIMIT}, got {echoed(limit_text)}", "limit")
    audit = AuditLog(state.redis, max_entries=state.config.router.audit_max_entries)
    entries = await audit.read(since=_moment(request, "since", end_of_day=False),
                               until=_moment(request, "until", end_of_day=True), limit=int(limit_text),
                               key=query.get("key"), action=query.get("action"))
    data: list[dict[str, Any]] = [e.to_json() for e in entries]
    return json_response({"object": "list", "data": data})
