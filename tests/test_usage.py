"""The usage ledger, budgets, model allowlists and max_tokens caps through a real router, Redis and sim replicas.

Keys are created and their budgets, allowlist and cap set with the ``fleetgate keys`` CLI; usage is read
back with ``fleetgate usage`` (the CLI reads the same Redis the routers write). Each test makes its own keys,
so the ledger rows it reads are its own.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import math
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import anthropic
import httpx
import openai
import pytest
import redis.asyncio as aioredis

from fleetgate.router.auth import KeyStore
from fleetgate.router.canonical.fold import Completion, UsageCounts
from fleetgate.router.key_policy import Budgets, KeyPolicy
from fleetgate.router.usage.budgets import capped_max_tokens, standings
from fleetgate.router.usage.charge import charge_for
from fleetgate.router.usage.key_labels import KeyLabels
from fleetgate.router.usage.ledger import BudgetUse, UsageRow, period_end, summed
from keys_helpers import create_key, keys_cli
from messages_helpers import anthropic_client
from router_process import REPO, ROUTER_CONFIG, RouterProcess, router_cluster, router_factory  # noqa: F401
from test_router_rate_limits import unique

AUTH_ON = {"FLEETGATE_ROUTER__AUTH": "true"}
HELLO = [{"role": "user", "content": "hi"}]


# ------------------------------------------------------------------ helpers


def key_id(redis_url: str, secret: str) -> str:
    async def lookup() -> str:
        client = aioredis.from_url(redis_url)
        try:
            info = await KeyStore(client).lookup(secret)
            assert info is not None
            return info.id
        finally:
            await client.aclose()

    return asyncio.run(lookup())


def update_key(redis_url: str, key: str, *options: str) -> None:
    """``fleetgate keys update KEY OPTIONS...``."""
    result = keys_cli(redis_url, "update", key, *options)
    assert result.returncode == 0, result.stderr


def usage(redis_url: str, *args: str) -> list[dict[str, object]]:
    """``fleetgate usage ...``: the rows of ``--format json``, or ``[{"text": stdout}]`` for the other formats."""
    env = {**os.environ, "FLEETGATE_REDIS__URL": redis_url}
    result = subprocess.run(
        [sys.executable, "-m", "fleetgate.launcher.cli", "usage", "--config", str(ROUTER_CONFIG), *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    if "json" not in args:
        return [{"text": result.stdout}]
    rows: list[dict[str, object]] = json.loads(result.stdout)
    return rows


def wait_for_row(redis_url: str, kid: str, model: str, requests: int, timeout: float = 15.0) -> dict[str, object]:
    """The key's row once it counts ``requests`` (a call that did not finish is charged in the background)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = [r for r in usage(redis_url, "--key", kid, "--format", "json") if r["model"] == model]
        if rows and rows[0]["requests"] == requests:
            return rows[0]
        assert time.monotonic() < deadline, f"usage of {kid} never reached {requests} requests: {rows}"
        time.sleep(0.2)


@pytest.fixture()
def auth_router(router_factory, router_cluster) -> RouterProcess:  # noqa: F811
    router = router_factory(env=AUTH_ON)
    router.wait_for_replicas("rt-sim", 1)
    return router


# ------------------------------------------------------------------ the ledger


def test_finished_requests_are_charged_what_the_engine_reported(auth_router, redis_server) -> None:
    router = auth_router
    secret = create_key(redis_server.url, unique("ledger"))
    kid = key_id(redis_server.url, secret)
    client = router.openai(secret)

    plain = client.chat.completions.create(model="rt-sim", messages=HELLO)
    streamed = list(client.chat.completions.create(model="rt-sim", messages=HELLO, stream=True,
                                                   stream_options={"include_usage": True}))
    stream_usage = streamed[-1].usage
    assert plain.usage is not None and stream_usage is not None
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=HELLO)

    # A key without budgets or a token limit: batched, written within router.usage.flush_seconds (1 s).
    row = wait_for_row(redis_server.url, kid, "rt-sim", 2)
    assert row["requests"] == 2 and row["errors"] == 0 and row["client_closed"] == 0
    assert row["input_tokens"] == plain.usage.prompt_tokens + stream_usage.prompt_tokens
    assert row["output_tokens"] == plain.usage.completion_tokens + stream_usage.completion_tokens == 16
    assert row["total_tokens"] == row["input_tokens"] + row["output_tokens"]
    assert row["ttft_count"] == 2 and row["ttft_ms_avg"] is not None and row["duration_ms_avg"] is not None
    refused = wait_for_row(redis_server.url, kid, "unknown", 1)
    assert (refused["errors"], refused["input_tokens"], refused["output_tokens"]) == (1, 0, 0)

    assert router.metric("fleetgate_key_usage_tokens_total", key_id=kid, model="rt-sim", kind="output") == 16
    assert router.metric("fleetgate_key_usage_requests_total", key_id=kid, model="rt-sim", outcome="ok") == 2
    assert secret not in httpx.get(f"{router.base_url}/metrics").text


def test_concurrent_requests_add_up_in_one_batched_entry(auth_router, redis_server) -> None:
    router = auth_router
    secret = create_key(redis_server.url, unique("batched"))
    kid = key_id(redis_server.url, secret)
    client = router.openai(secret)
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda _: client.chat.completions.create(model="rt-sim", messages=HELLO), range(12)))
    row = wait_for_row(redis_server.url, kid, "rt-sim", 12)
    assert row["output_tokens"] == sum(a.usage.completion_tokens for a in answers if a.usage) == 96
    assert row["input_tokens"] == sum(a.usage.prompt_tokens for a in answers if a.usage)
    time.sleep(1.5)  # another flush: nothing is written twice
    assert wait_for_row(redis_server.url, kid, "rt-sim", 12)["output_tokens"] == 96


def test_a_client_that_hangs_up_mid_stream_is_charged_for_what_was_generated(
    auth_router, redis_server, replica_factory
) -> None:
    router = auth_router
    replica_factory("rt-slow", config=ROUTER_CONFIG)
    router.wait_for_replicas("rt-slow", 1)
    secret = create_key(redis_server.url, unique("hangup"), "--tpm", "1000000")
    kid = key_id(redis_server.url, secret)

    received = 0
    with router.openai(secret).chat.completions.create(model="rt-slow", messages=HELLO, stream=True,
                                                       max_tokens=1000) as stream:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                received += 1
            if received == 10:
                break
    row = wait_for_row(redis_server.url, kid, "rt-slow", 1)
    assert row["client_closed"] == 1 and row["errors"] == 0
    assert row["input_tokens"] > 0  # the prompt was prefilled
    # One token per event received, and the few the engine made before the router's cancel reached it.
    assert 10 <= row["output_tokens"] < 100, row


def test_a_replica_dying_mid_stream_charges_the_tokens_it_produced(auth_router, redis_server, replica_factory) -> None:
    router = auth_router
    replica_factory("rt-dies", config=ROUTER_CONFIG)
    router.wait_for_replicas("rt-dies", 1)
    secret = create_key(redis_server.url, unique("dies"))
    kid = key_id(redis_server.url, secret)
    with pytest.raises(openai.APIError):
        for _ in router.openai(secret).chat.completions.create(model="rt-dies", messages=HELLO, stream=True):
            pass
    row = wait_for_row(redis_server.url, kid, "rt-dies", 1)
    assert row["errors"] == 1 and row["input_tokens"] > 0 and row["output_tokens"] == 3, row


def test_usage_cli_filters_and_formats(auth_router, redis_server) -> None:
    router = auth_router
    name = unique("formats")
    secret = create_key(redis_server.url, name)
    kid = key_id(redis_server.url, secret)
    router.openai(secret).chat.completions.create(model="rt-sim", messages=HELLO)
    router.openai(secret).chat.completions.create(model="rt-echo", messages=HELLO)
    wait_for_row(redis_server.url, kid, "rt-echo", 1)
    wait_for_row(redis_server.url, kid, "rt-sim", 1)

    by_name = usage(redis_server.url, "--key", name, "--format", "json")
    assert sorted(r["model"] for r in by_name) == ["rt-echo", "rt-sim"]
    assert {r["key_id"] for r in by_name} == {kid} and {r["key_name"] for r in by_name} == {name}
    assert [r["model"] for r in usage(redis_server.url, "--key", kid, "--model", "rt-echo", "--format", "json")] \
        == ["rt-echo"]
    today = datetime.now(UTC).date()
    daily = usage(redis_server.url, "--key", kid, "--daily", "--since", (today - timedelta(days=3)).isoformat(),
                  "--format", "json")
    assert {r["day"] for r in daily} == {today.isoformat()}
    assert usage(redis_server.url, "--key", kid, "--since", (today + timedelta(days=1)).isoformat(),
                 "--until", (today + timedelta(days=2)).isoformat(), "--format", "json") == []

    lines = list(csv.DictReader(io.StringIO(str(usage(redis_server.url, "--key", kid, "--format", "csv")[0]["text"]))))
    assert [line["model"] for line in lines] == ["rt-echo", "rt-sim"] and lines[0]["key_name"] == name
    table = str(usage(redis_server.url, "--key", kid)[0]["text"]).splitlines()
    assert table[0].split()[:4] == ["KEY", "NAME", "MODEL", "REQUESTS"] and len(table) == 3
    assert secret not in "".join(table)


# ------------------------------------------------------------------ budgets, allowlist, cap


def test_a_day_budget_refuses_once_used_up_in_both_shapes(auth_router, redis_server) -> None:
    router = auth_router
    name = unique("budget")
    secret = create_key(redis_server.url, name)
    update_key(redis_server.url, name, "--budget-day-tokens", "15", "--budget-month-output-tokens", "10000")

    first = router.openai(secret).chat.completions.with_raw_response.create(model="rt-sim", messages=HELLO)
    spent = first.parse().usage.total_tokens
    assert first.headers["x-ratelimit-limit-tokens-day"] == "15"
    assert first.headers["x-ratelimit-remaining-tokens-day"] == "15"  # before this request
    assert first.headers["x-ratelimit-limit-output-tokens-month"] == "10000"
    second = router.openai(secret).chat.completions.with_raw_response.create(model="rt-sim", messages=HELLO)
    assert second.headers["x-ratelimit-remaining-tokens-day"] == str(max(0, 15 - spent))
    used = spent + second.parse().usage.total_tokens
    assert used >= 15 > spent, "two requests use the budget up"

    with pytest.raises(openai.RateLimitError) as caught:
        router.openai(secret).chat.completions.create(model="rt-sim", messages=HELLO)
    refused = caught.value.response
    body = refused.json()["error"]
    assert (body["type"], body["code"]) == ("insufficient_quota", "insufficient_quota")
    tomorrow = datetime.combine(datetime.now(UTC).date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    assert body["message"] == (
        f"Token budget reached for API key {name!r}: 15 tokens (input + output) per day, used {used}, 0 left; "
        f"it resets at {tomorrow.strftime('%Y-%m-%dT%H:%M:%SZ')} (in {refused.headers['retry-after']}s)."
    )
    assert abs(int(refused.headers["retry-after"]) - (tomorrow.timestamp() - time.time())) < 5
    assert refused.headers["x-ratelimit-remaining-tokens-day"] == "0"

    with pytest.raises(anthropic.RateLimitError) as anthropic_caught:
        anthropic_client(router, secret).messages.create(model="rt-sim", max_tokens=16, messages=HELLO)
    answer = anthropic_caught.value.response
    assert answer.json()["error"]["type"] == "rate_limit_error"
    assert answer.headers["anthropic-ratelimit-tokens-day-remaining"] == "0"
    assert answer.headers["anthropic-ratelimit-tokens-day-reset"] == tomorrow.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_model_allowlist_and_max_tokens_cap(auth_router, redis_server) -> None:
    router = auth_router
    name = unique("allow")
    secret = create_key(redis_server.url, name)
    update_key(redis_server.url, name, "--models", "rt-echo", "--max-tokens", "3")

    with pytest.raises(openai.PermissionDeniedError) as caught:
        router.openai(secret).chat.completions.create(model="rt-sim", messages=HELLO)
    error = caught.value.response.json()["error"]
    assert (error["type"], error["code"], error["param"]) == ("permission_error", "model_not_allowed", "model")
    assert error["message"] == f"API key {name!r} may not use the model 'rt-sim'; it may use: rt-echo"
    with pytest.raises(anthropic.PermissionDeniedError):
        anthropic_client(router, secret).messages.create(model="rt-sim", max_tokens=16, messages=HELLO)

    capped = router.openai(secret).chat.completions.with_raw_response.create(
        model="rt-echo", max_tokens=100, messages=[{"role": "user", "content": "one two three four five six"}])
    answer = capped.parse()
    assert capped.headers["x-fleetgate-max-tokens-cap"] == "3"
    assert answer.usage.completion_tokens == 3 and answer.choices[0].finish_reason == "length"
    small = router.openai(secret).chat.completions.with_raw_response.create(model="rt-echo", max_tokens=2,
                                                                           messages=HELLO)
    assert "x-fleetgate-max-tokens-cap" not in small.headers


def test_tokens_of_a_hung_up_stream_count_against_the_token_limit(auth_router, redis_server, replica_factory) -> None:
    router = auth_router
    replica_factory("rt-slow", config=ROUTER_CONFIG)
    router.wait_for_replicas("rt-slow", 1)
    secret = create_key(redis_server.url, unique("dodge"), "--tpm", "40")
    kid = key_id(redis_server.url, secret)
    with router.openai(secret).chat.completions.create(model="rt-slow", messages=HELLO, stream=True) as stream:
        for n, _ in enumerate(stream):
            if n == 50:
                break
    wait_for_row(redis_server.url, kid, "rt-slow", 1)
    with pytest.raises(openai.RateLimitError) as caught:
        router.openai(secret).chat.completions.create(model="rt-sim", messages=HELLO)
    assert caught.value.response.json()["error"]["type"] == "tokens"


# ------------------------------------------------------------------ pure parts


def test_charge_of_a_generation_cut_short_counts_its_token_events() -> None:
    cut = Completion(usage=UsageCounts(prompt_tokens=12), output_events=7)
    charge = charge_for("key_a", "m", at=0.0, status=499, completion=cut, ttft_seconds=0.25, duration_seconds=1.0,
                        queue_seconds=0.0)
    assert (charge.outcome, charge.input_tokens, charge.output_tokens, charge.ttft_ms) == ("client_closed", 12, 7, 250)
    done = Completion(usage=UsageCounts(12, 9, 8, 2), output_events=7, usage_reported=True, finished=True)
    charge = charge_for("", "m", at=0.0, status=200, completion=done, ttft_seconds=None, duration_seconds=0.5,
                        queue_seconds=0.1)
    assert (charge.key_id, charge.input_tokens, charge.cached_input_tokens, charge.output_tokens) == \
        ("anonymous", 12, 8, 9)
    assert charge.counters()["ttft_count"] == 0 and charge.counters()["queue_ms_sum"] == 100
    refused = charge_for("key_a", "m", at=0.0, status=429, completion=None, ttft_seconds=None, duration_seconds=0.0,
                         queue_seconds=0.0)
    assert refused.counters() | {"duration_ms_sum": 0} == {
        "requests": 1, "errors": 1, "client_closed": 0, "input_tokens": 0, "cached_input_tokens": 0,
        "output_tokens": 0, "reasoning_tokens": 0, "ttft_ms_sum": 0, "ttft_count": 0, "duration_ms_sum": 0,
        "queue_ms_sum": 0, "tool_calls": 0}


def test_periods_and_standings() -> None:
    assert period_end("month", date(2026, 12, 31)) == datetime(2027, 1, 1, tzinfo=UTC)
    assert period_end("day", date(2026, 2, 28)) == datetime(2026, 3, 1, tzinfo=UTC)
    policy = KeyPolicy(budgets=Budgets(day_input_tokens=100, month_tokens=1000))
    now = datetime(2026, 12, 2, 12, tzinfo=UTC).timestamp()
    rows = standings(policy, BudgetUse(day_input_tokens=100, day_output_tokens=5, month_input_tokens=400,
                                       month_output_tokens=50), now)
    assert [(r.period, r.kind, r.used, r.remaining, r.exhausted) for r in rows] == [
        ("day", "input_tokens", 100, 0, True), ("month", "tokens", 450, 550, False)]
    assert math.isclose(rows[0].resets_at - now, 12 * 3600)
    assert capped_max_tokens(None, 10) == 10 and capped_max_tokens(50, 10) == 10
    assert capped_max_tokens(5, 10) is None and capped_max_tokens(50, None) is None


def test_rows_sum_per_key_and_model_and_labels_are_bounded() -> None:
    rows = [UsageRow("2026-12-01", "k1", "m", requests=1, input_tokens=5), UsageRow("2026-12-02", "k1", "m",
            requests=2, input_tokens=7), UsageRow("2026-12-02", "k2", "m", requests=1)]
    assert summed(rows) == [UsageRow("2026-12-01", "k1", "m", requests=3, input_tokens=12),
                            UsageRow("2026-12-02", "k2", "m", requests=1)]
    labels = KeyLabels(2)
    assert [labels.label(k) for k in ("a", "b", "c", "a", "")] == ["a", "b", "other", "a", "other"]


def test_key_policy_round_trips_through_record_fields() -> None:
    policy = KeyPolicy(role="admin", owner="ml-team", budgets=Budgets(day_tokens=5, month_output_tokens=9),
                       models=("a", "b"), max_tokens=64, weight=2.5, priority=-3, server_tools=True)
    assert policy.to_fields()["server_tools"] == "1"
    assert KeyPolicy.from_fields(policy.to_fields()) == policy
    assert KeyPolicy.from_fields({"server_tools": "0"}).server_tools is False
    assert "server_tools" not in replace(policy, server_tools=False).to_fields()
    assert KeyPolicy().to_fields() == {} and KeyPolicy.from_fields({}) == KeyPolicy()
    with pytest.raises(ValueError, match="weight"):
        KeyPolicy(weight=0).validated()
    with pytest.raises(ValueError, match="budget day tokens"):
        KeyPolicy(budgets=Budgets(day_tokens=0)).validated()
