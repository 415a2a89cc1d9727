"""OpenAI's error body and rate-limit headers: the shape every OpenAI API answers in (pure).

Chat Completions, Completions and Responses inherit ``OpenAIShape``; the routes
no dialect owns (``/v1/models``, unknown paths) answer in it too
(``OPENAI_SHAPE``, the router's default). The body is
``{"error": {"message", "type", "param", "code"}}``; the headers of a key with
limits are ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``, the reset a
duration such as ``59.2s``; of a key with token budgets
``x-ratelimit-{limit,remaining,reset}-{tokens,input-tokens,output-tokens}-{day,month}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from fleetgate.router.errors import ApiError, ErrorKind
from fleetgate.router.rate_limit import Limits, WindowReading, go_duration, limit_counts

if TYPE_CHECKING:
    from fleetgate.router.usage.budgets import BudgetStanding

# OpenAI's error ``type`` of each kind (a rate limit's own ``type`` names the limit: ApiError.openai_type).
ERROR_TYPES: dict[ErrorKind, str] = {
    ErrorKind.INVALID_REQUEST: "invalid_request_error",
    ErrorKind.AUTHENTICATION: "authentication_error",
    ErrorKind.PERMISSION: "permission_error",
    ErrorKind.NOT_FOUND: "not_found_error",
    ErrorKind.REQUEST_TOO_LARGE: "invalid_request_error",
    ErrorKind.RATE_LIMIT: "rate_limit_error",
    ErrorKind.API_ERROR: "server_error",
    ErrorKind.OVERLOADED: "server_error",
}


def openai_error_body(err: ApiError) -> dict[str, Any]:
    wire_type = err.openai_type or ERROR_TYPES[err.kind]
    return {"error": {"message": err.message, "type": wire_type, "param": err.param, "code": err.code}}


class OpenAIShape:
    """How an OpenAI API renders an error and names a key's rate-limit headers."""

    def error_body(self, err: ApiError) -> dict[str, Any]:
        return openai_error_body(err)

    def rate_limit_headers(self, limits: Limits, reading: WindowReading, now: float) -> dict[str, str]:
        headers: dict[str, str] = {}
        for name, limit, remaining in limit_counts(limits, reading):
            headers[f"x-ratelimit-limit-{name}"] = str(limit)
            headers[f"x-ratelimit-remaining-{name}"] = str(remaining)
            headers[f"x-ratelimit-reset-{name}"] = go_duration(reading.reset_seconds)
        return headers

    def budget_headers(self, standings: Sequence[BudgetStanding], now: float) -> dict[str, str]:
        headers: dict[str, str] = {}
        for s in standings:
            name = f"{s.kind.replace('_', '-')}-{s.period}"
            headers[f"x-ratelimit-limit-{name}"] = str(s.limit)
            headers[f"x-ratelimit-remaining-{name}"] = str(s.remaining)
            headers[f"x-ratelimit-reset-{name}"] = go_duration(s.resets_at - now)
        return headers


OPENAI_SHAPE = OpenAIShape()
