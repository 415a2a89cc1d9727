"""Per-key rate limits through real routers, a shared Redis and the official SDKs (their retries off).

Limits are set with the ``fleetgate keys`` CLI; the routers run with auth on and
the default 60 s window (a key's window opens with its first request, so a test's
few requests always fall in one), except the auth-off test, which waits for a
short window to close.
"""

from __future__ import annotations

import re
import time
import uuid

import anthropic
import openai
import pytest

from keys_helpers import create_key, keys_cli, listed
from messages_helpers import anthropic_client
from router_process import RouterProcess, router_cluster, router_factory  # noqa: F401

HELLO = [{"role": "user", "content": "hi"}]
AUTH_ON = {"FLEETGATE_ROUTER__AUTH": "true"}
OPENAI_RESET = re.compile(r"^(\d+ms|(\d+m)?\d+(\.\d+)?s)$")
ANTHROPIC_RESET = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def unique(name: str) -> str:
    """Keys outlive a test in the session's Redis: a fresh name each time."""
    return f"{name}-{uuid.uuid4().hex[:6]}"


@pytest.fixture()
def auth_router(router_factory, router_cluster) -> RouterProcess:  # noqa: F811
    """A router with auth on, beside the session's sim replicas."""
    router = router_factory(env=AUTH_ON)
    router.wait_for_replicas("rt-sim", 1)
    return router


def chat(router: RouterProcess, key: str, **params):  # type: ignore[no-untyped-def]
    """The raw SDK response of a chat completion (headers, then ``.parse()``)."""
    return router.openai(key).chat.completions.with_raw_response.create(model="rt-sim", messages=HELLO, **params)


def refused_chat(router: RouterProcess, key: str, **params) -> openai.RateLimitError:  # type: ignore[no-untyped-def]
    with pytest.raises(openai.RateLimitError) as caught:
        router.openai(key).chat.completions.create(model="rt-sim", messages=HELLO, **params)
    return caught.value


def limit_headers(headers) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {k: v for k, v in headers.items() if "ratelimit" in k}


def test_request_limit_refuses_with_openai_shape_and_leaves_other_keys_alone(auth_router, redis_server) -> None:
    router = auth_router
    name = unique("rpm2")
    limited, other = create_key(redis_server.url, name, "--rpm", "2"), create_key(redis_server.url, unique("free"))
    assert (listed(redis_server.url)[name]["RPM"], listed(redis_server.url)[name]["TPM"]) == ("2", "default")
    refusals_before = router.metric("fleetgate_rate_limited_total", model="rt-sim")

    for remaining in ("1", "0"):
        answer = chat(router, limited)
        assert answer.parse().choices[0].message.content
        assert answer.headers["x-ratelimit-limit-requests"] == "2"
        assert answer.headers["x-ratelimit-remaining-requests"] == remaining
        assert OPENAI_RESET.match(answer.headers["x-ratelimit-reset-requests"])
        assert "x-ratelimit-limit-tokens" not in answer.headers

    refused = refused_chat(router, limited)
    assert refused.status_code == 429
    body = refused.response.json()
    assert body["error"]["type"] == "requests" and body["error"]["code"] == "rate_limit_exceeded"
    assert body["error"]["param"] is None
    assert body["error"]["message"].startswith(f"Rate limit reached for API key {name!r} on requests per minute: "
                                               "limit 2, used 2. Please try again in ")
    assert 1 <= int(refused.response.headers["retry-after"]) <= 60
    assert refused.response.headers["x-ratelimit-remaining-requests"] == "0"
    # Refused before any stream starts: a streaming request gets the same JSON 429.
    assert refused_chat(router, limited, stream=True).response.json()["error"]["type"] == "requests"
    assert router.metric("fleetgate_rate_limited_total", model="rt-sim") == refusals_before + 2

    # Another key is not affected, and with no limit of its own (nor a default) it gets no limit headers.
    free = chat(router, other)
    assert free.parse().choices[0].message.content and limit_headers(free.headers) == {}

    # The two 429s were not counted: raised to 3, the key gets exactly one more request.
    assert keys_cli(redis_server.url, "limit", name, "--rpm", "3").returncode == 0
    assert chat(router, limited).headers["x-ratelimit-remaining-requests"] == "0"
    refused_chat(router, limited)
    # Cleared, the key follows the router's default again: unlimited.
    cleared = keys_cli(redis_server.url, "limit", name, "--rpm", "none")
    assert cleared.returncode == 0 and "rpm default" in cleared.stdout
    assert listed(redis_server.url)[name]["RPM"] == "default"
    assert limit_headers(chat(router, limited).headers) == {}


def test_messages_are_refused_in_anthropic_shape(auth_router, redis_server) -> None:
    key = create_key(redis_server.url, unique("rpm1-messages"), "--rpm", "1")
    client = anthropic_client(auth_router, key)
    answer = client.messages.with_raw_response.create(model="rt-sim", max_tokens=8, messages=HELLO)
    assert answer.parse().content
    assert answer.headers["anthropic-ratelimit-requests-limit"] == "1"
    assert answer.headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert ANTHROPIC_RESET.match(answer.headers["anthropic-ratelimit-requests-reset"])
    assert "x-ratelimit-limit-requests" not in answer.headers

    with pytest.raises(anthropic.RateLimitError) as caught:
        client.messages.create(model="rt-sim", max_tokens=8, messages=HELLO)
    body = caught.value.response.json()
    assert caught.value.status_code == 429 and body["type"] == "error"
    assert (
        body["error"]["type"] == "rate_limit_error"
        and "on requests per minute: limit 1, used 1" in body["error"]["message"]
    )
    assert 1 <= int(caught.value.response.headers["retry-after"]) <= 60
    assert caught.value.response.headers["anthropic-ratelimit-requests-remaining"] == "0"
    # Counting tokens generates nothing: not limited.
    assert client.messages.count_tokens(model="rt-sim", messages=HELLO).input_tokens > 0


def test_two_routers_share_one_window_across_dialects(router_factory, router_cluster, redis_server) -> None:  # noqa: F811
    routers = [router_factory(env=AUTH_ON), router_factory(env=AUTH_ON)]
    for router in routers:
        router.wait_for_replicas("rt-sim", 1)
    key = create_key(redis_server.url, unique("rpm3-shared"), "--rpm", "3")

    assert chat(routers[0], key).headers["x-ratelimit-remaining-requests"] == "2"
    streamed = chat(routers[1], key, stream=True)
    assert streamed.headers["x-ratelimit-remaining-requests"] == "1"
    assert [chunk for chunk in streamed.parse()]
    response = routers[0].openai(key).responses.with_raw_response.create(model="rt-sim", input="hi")
    assert response.headers["x-ratelimit-remaining-requests"] == "0" and response.parse().output_text
    assert refused_chat(routers[1], key).response.json()["error"]["type"] == "requests"
    with pytest.raises(openai.RateLimitError):
        routers[0].openai(key).responses.create(model="rt-sim", input="hi")


def test_token_limit_trips_once_usage_reaches_it(auth_router, router_cluster, redis_server) -> None:  # noqa: F811
    # The simulator's usage is deterministic: measure one request's tokens on the keyless router.
    per_request = router_cluster.openai().chat.completions.create(model="rt-sim", messages=HELLO).usage.total_tokens
    limit = per_request + 1
    name = unique("tpm")
    key = create_key(redis_server.url, name, "--tpm", str(limit))

    first = chat(auth_router, key)
    assert first.parse().usage.total_tokens == per_request
    assert (first.headers["x-ratelimit-limit-tokens"], first.headers["x-ratelimit-remaining-tokens"]) == (
        str(limit),
        str(limit),
    )
    assert "x-ratelimit-limit-requests" not in first.headers
    # Checked before the request, counted after it: the second request is admitted, streamed, and takes the key over.
    second = chat(auth_router, key, stream=True, stream_options={"include_usage": True})
    assert second.headers["x-ratelimit-remaining-tokens"] == "1"
    assert [chunk.usage.total_tokens for chunk in second.parse() if chunk.usage] == [per_request]

    refused = refused_chat(auth_router, key)
    error = refused.response.json()["error"]
    assert error["type"] == "tokens" and error["code"] == "rate_limit_exceeded"
    assert f"on tokens per minute: limit {limit}, used {2 * per_request}." in error["message"]
    assert refused.response.headers["x-ratelimit-remaining-tokens"] == "0"

    # A higher limit applies at once.
    assert keys_cli(redis_server.url, "limit", name, "--tpm", str(10 * per_request)).returncode == 0
    assert chat(auth_router, key).headers["x-ratelimit-remaining-tokens"] == str(8 * per_request)


def test_auth_off_callers_share_the_default_limits_until_the_window_closes(router_factory, router_cluster,  # noqa: F811
                                                                            redis_server) -> None:
    client = redis_server.client()
    client.delete("fleetgate:ratelimit:anonymous")
    client.close()
    router = router_factory(env={"FLEETGATE_ROUTER__RATE_LIMIT_REQUESTS_PER_MINUTE": "2",
                                 "FLEETGATE_ROUTER__RATE_LIMIT_WINDOW_SECONDS": "5"})
    router.wait_for_replicas("rt-sim", 1)

    assert chat(router, "one-caller").headers["x-ratelimit-remaining-requests"] == "1"
    assert chat(router, "another-caller").headers["x-ratelimit-remaining-requests"] == "0"
    refused = refused_chat(router, "a-third-caller")
    assert (
        "for API key 'anonymous' on requests per 5 s: limit 2, used 2." in refused.response.json()["error"]["message"]
    )
    retry_after = int(refused.response.headers["retry-after"])
    assert 1 <= retry_after <= 5

    time.sleep(retry_after)
    assert chat(router, "one-caller").headers["x-ratelimit-remaining-requests"] == "1"
