"""The pure half of rate limits (router/rate_limit.py): which limit refuses, the headers, the 429 in both shapes."""

from __future__ import annotations

import pytest

from fleetgate.router.dialects.chat.dialect import CHAT
from fleetgate.router.dialects.messages.dialect import MESSAGES
from fleetgate.router.dialects.messages.shape import anthropic_error_body
from fleetgate.router.dialects.openai_shape import openai_error_body
from fleetgate.router.rate_limit import (
    Limits,
    WindowReading,
    exceeded,
    go_duration,
    rate_limit_error,
)

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0ms"), (0.25, "250ms"), (1, "1s"), (59.5, "59.5s"), (2.4384, "2.438s"), (60, "1m0s"), (360, "6m0s"),
     (3661, "1h1m1s")],
)
def test_reset_durations_read_like_openai(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


def test_key_overrides_fall_back_to_defaults() -> None:
    defaults = Limits(requests=60, tokens=None)
    assert Limits().over(defaults) == defaults
    assert Limits(tokens=1000).over(defaults) == Limits(60, 1000)
    assert Limits(requests=5).over(defaults) == Limits(5, None)
    assert Limits().over(Limits()).unlimited


def test_the_limit_reached_first_refuses() -> None:
    limits = Limits(requests=2, tokens=100)
    assert exceeded(limits, requests=1, tokens=99) is None
    assert exceeded(limits, requests=2, tokens=0) == "requests"
    assert exceeded(limits, requests=0, tokens=100) == "tokens"
    assert exceeded(Limits(), requests=10**6, tokens=10**9) is None


def test_headers_name_only_the_limits_that_apply() -> None:
    reading = WindowReading(admitted=True, requests=1, tokens=40, reset_seconds=59.5)
    assert CHAT.rate_limit_headers(Limits(requests=2), reading, NOW) == {
        "x-ratelimit-limit-requests": "2", "x-ratelimit-remaining-requests": "1", "x-ratelimit-reset-requests": "59.5s",
    }
    assert MESSAGES.rate_limit_headers(Limits(requests=2, tokens=30), reading, NOW) == {
        "anthropic-ratelimit-requests-limit": "2", "anthropic-ratelimit-requests-remaining": "1",
        "anthropic-ratelimit-requests-reset": "2026-01-01T00:01:00Z",
        "anthropic-ratelimit-tokens-limit": "30", "anthropic-ratelimit-tokens-remaining": "0",
        "anthropic-ratelimit-tokens-reset": "2026-01-01T00:01:00Z",
    }


def test_the_429_in_both_shapes_with_retry_after() -> None:
    limits = Limits(requests=10, tokens=500)
    reading = WindowReading(admitted=False, requests=3, tokens=512, reset_seconds=41.2)
    headers = CHAT.rate_limit_headers(limits, reading, NOW)
    err = rate_limit_error(limits, reading, key_name="alice", window_seconds=60, headers=headers)
    assert err.status == 429
    assert err.headers == {**headers, "Retry-After": "42"}
    message = (
        "Rate limit reached for API key 'alice' on tokens per minute: limit 500, used 512. Please try again in 42s."
    )
    assert openai_error_body(err) == {"error": {"message": message, "type": "tokens", "param": None,
                                                "code": "rate_limit_exceeded"}}
    assert anthropic_error_body(err) == {"type": "error", "error": {"type": "rate_limit_error", "message": message}}

    anonymous = rate_limit_error(Limits(requests=1), WindowReading(False, 1, 0, 0.2), key_name="", window_seconds=5,
                                 headers={})
    assert anonymous.retry_after == 1 and openai_error_body(anonymous)["error"]["type"] == "requests"
    assert anonymous.message.startswith(
        "Rate limit reached for API key 'anonymous' on requests per 5 s: limit 1, used 1."
    )
