"""Per-API-key rate limits: the pure part (limits, window readings, headers, the 429).

A key may make ``requests`` requests and use ``tokens`` tokens (prompt +
completion) per window of ``router.rate_limit_window_seconds`` (60 s: the limits
are per minute, as named). The window opens with the key's first request and
closes that many seconds later; the next request opens a new one. Requests are
counted when admitted (a refused request is never counted); tokens are counted
after each request from its usage and checked before the next, so one request
may take a key past its token limit and the key waits for the window to close.

Limits come from the router config (``rate_limit_requests_per_minute``,
``rate_limit_tokens_per_minute``: every key's default, None for unlimited),
overridden per key by ``fleetgate keys create/limit --rpm/--tpm``. With auth off
there are no keys: every caller shares one ``anonymous`` window under the defaults.

Answers of a limited key carry the dialect's rate-limit headers, named by the
dialect (``Dialect.rate_limit_headers``) from ``limit_counts``: OpenAI's
``x-ratelimit-{limit,remaining,reset}-{requests,tokens}`` (reset as a duration
such as ``59.2s``, ``go_duration``), or on ``/v1/messages`` Anthropic's
``anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}`` (reset as an
RFC 3339 time, ``rfc3339``). The counting itself is in ``router.rate_limit_store`` (Redis).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from fleetgate.router.errors import ApiError, rate_limited

ANONYMOUS_BUCKET = "anonymous"

LimitName = Literal["requests", "tokens"]


@dataclass(frozen=True)
class Limits:
    """Requests and tokens allowed per window; None is unlimited (or, for a key's override, the default)."""

    requests: int | None = None
    tokens: int | None = None

    def over(self, defaults: Limits) -> Limits:
        """These overrides over ``defaults``."""
        return Limits(
            self.requests if self.requests is not None else defaults.requests,
            self.tokens if self.tokens is not None else defaults.tokens,
        )

    @property
    def unlimited(self) -> bool:
        return self.requests is None and self.tokens is None


@dataclass(frozen=True)
class WindowReading:
    """A key's window as the admission found it: counts (this request included when admitted), time to close."""

    admitted: bool
    requests: int
    tokens: int
    reset_seconds: float


def bucket_for(key_id: str) -> str:
    """The window's owner: the API key id, or the shared anonymous bucket with auth off."""
    return key_id or ANONYMOUS_BUCKET


def exceeded(limits: Limits, requests: int, tokens: int) -> LimitName | None:
    """The limit that refuses one more request given the window's counts (before counting it), if any."""
    if limits.requests is not None and requests >= limits.requests:
        return "requests"
    if limits.tokens is not None and tokens >= limits.tokens:
        return "tokens"
    return None


def retry_after_seconds(reset_seconds: float) -> int:
    """Whole seconds until the window closes (at least 1): the ``Retry-After`` of a 429."""
    return max(1, math.ceil(reset_seconds))


def go_duration(seconds: float) -> str:
    """A duration the way OpenAI's reset headers write it: ``250ms``, ``59.5s``, ``6m0s``, ``1h0m0s``."""
    millis = max(0, round(seconds * 1000))
    if millis < 1000:
        return f"{millis}ms"
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    text = f"{millis / 1000:.3f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{text}"
    return f"{minutes}m{text}" if minutes else text


def rfc3339(timestamp: float) -> str:
    """A Unix time, rounded up to the second, as ``2025-01-01T00:00:30Z`` (Anthropic's reset headers)."""
    return datetime.fromtimestamp(math.ceil(timestamp), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def limit_counts(limits: Limits, reading: WindowReading) -> list[tuple[LimitName, int, int]]:
    """(name, limit, remaining) of each limit that applies: what the rate-limit headers say."""
    out: list[tuple[LimitName, int, int]] = []
    if limits.requests is not None:
        out.append(("requests", limits.requests, max(0, limits.requests - reading.requests)))
    if limits.tokens is not None:
        out.append(("tokens", limits.tokens, max(0, limits.tokens - reading.tokens)))
    return out


def _per_window(window_seconds: float) -> str:
    return "per minute" if window_seconds == 60 else f"per {window_seconds:g} s"


def rate_limit_error(
    limits: Limits, reading: WindowReading, *, key_name: str, window_seconds: float, headers: dict[str, str]
) -> ApiError:
    """The 429 for a refused ``reading``: which limit, how much was used, when to retry."""
    limit = exceeded(limits, reading.requests, reading.tokens) or "requests"
    allowed = limits.requests if limit == "requests" else limits.tokens
    used = reading.requests if limit == "requests" else reading.tokens
    retry_after = retry_after_seconds(reading.reset_seconds)
    message = (
        f"Rate limit reached for API key {key_name or ANONYMOUS_BUCKET!r} on {limit} {_per_window(window_seconds)}: "
        f"limit {allowed}, used {used}. Please try again in {retry_after}s."
    )
    return rate_limited(message, retry_after, limit=limit, headers=headers)
