"""Anthropic's error body and rate-limit headers: the shape of every ``/v1/messages*`` answer (pure).

The body is ``{"type": "error", "error": {"type", "message"}}`` (also the
stream's ``error`` event); the headers of a key with limits are
``anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}``, the reset an
RFC 3339 time; of a key with token budgets
``anthropic-ratelimit-{tokens,input-tokens,output-tokens}-{day,month}-{limit,remaining,reset}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from fleetgate.router.errors import ApiError, ErrorKind
from fleetgate.router.rate_limit import Limits, WindowReading, limit_counts, rfc3339

if TYPE_CHECKING:
    from fleetgate.router.usage.budgets import BudgetStanding

# Anthropic's error ``type`` of each kind.
ERROR_TYPES: dict[ErrorKind, str] = {
    ErrorKind.INVALID_REQUEST: "invalid_request_error",
    ErrorKind.AUTHENTICATION: "authentication_error",
    ErrorKind.PERMISSION: "permission_error",
    ErrorKind.NOT_FOUND: "not_found_error",
    ErrorKind.REQUEST_TOO_LARGE: "request_too_large",
    ErrorKind.RATE_LIMIT: "rate_limit_error",
    ErrorKind.API_ERROR: "api_error",
    ErrorKind.OVERLOADED: "overloaded_error",
}


def anthropic_error_body(err: ApiError) -> dict[str, Any]:
    return {"type": "error", "error": {"type": ERROR_TYPES[err.kind], "message": err.message}}


class AnthropicShape:
    """How the Messages API renders an error and names a key's rate-limit headers."""

    def error_body(self, err: ApiError) -> dict[str, Any]:
        return anthropic_error_body(err)

    def rate_limit_headers(self, limits: Limits, reading: WindowReading, now: float) -> dict[str, str]:
        headers: dict[str, str] = {}
        for name, limit, remaining in limit_counts(limits, reading):
            prefix = f"anthropic-ratelimit-{name}"
            headers[f"{prefix}-limit"] = str(limit)
            headers[f"{prefix}-remaining"] = str(remaining)
            headers[f"{prefix}-reset"] = rfc3339(now + reading.reset_seconds)
        return headers

    def budget_headers(self, standings: Sequence[BudgetStanding], now: float) -> dict[str, str]:
        headers: dict[str, str] = {}
        for s in standings:
            prefix = f"anthropic-ratelimit-{s.kind.replace('_', '-')}-{s.period}"
            headers[f"{prefix}-limit"] = str(s.limit)
            headers[f"{prefix}-remaining"] = str(s.remaining)
            headers[f"{prefix}-reset"] = rfc3339(s.resets_at)
        return headers
