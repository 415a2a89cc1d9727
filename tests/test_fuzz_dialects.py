"""Fuzzing the four dialects' request bodies against a real router and sim replicas (issue 14).

Hypothesis draws bodies for ``/v1/chat/completions``, ``/v1/completions``, ``/v1/messages`` (and its
``count_tokens``) and ``/v1/responses``: valid-shaped bodies whose fields are, each with some chance, replaced
by a wild value (a wrong type, an integer from -2^70 to 2^70 or at the proto's edges, a float, unicode text,
a structure nested up to 300 levels) or left out; tools and response formats with random JSON schemas (deep,
with ``$ref``); raw bytes that are not JSON; random ids on the stored-response routes. Every answer must be
below 500, every 4xx in the dialect's error shape (OpenAI ``{"error": {"message", "type", ...}}``, Anthropic
``{"type": "error", "error": {"type", "message"}}``), and a 200 stream may not end in an error event. All
requests of a test share one keep-alive connection, so a reset connection fails the test too.

Schemathesis is not used: the router reads its dialect bodies itself (no FastAPI body models), so its
OpenAPI document declares no request body for any route, and schemathesis would only vary path parameters,
which the stored-response test below covers.

Bounded for CI: ``derandomize`` (the same examples every run), ``max_examples`` per test, no deadline; the
suite takes ~30-60 s on 2 cores. The counts of what was sent and answered are written to
``fuzz_figures.json`` in pytest's base temp dir and printed (the README's Reliability section quotes them).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router_process import RouterProcess, router_cluster  # noqa: F401

FUZZ = settings(
    max_examples=80, deadline=None, derandomize=True, database=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
MODELS = ("rt-sim", "rt-echo", "rt-reasoning")
ANTHROPIC_PATHS = ("/v1/messages", "/v1/messages/count_tokens")
# Integers at and past the edges the proto and engines hold (int32, int64, uint64, doubles' exact range).
EDGE_INTEGERS = (0, -1, 1, 2**31 - 1, 2**31, 2**32, 2**53 + 1, 2**63 - 1, 2**63, 2**64, -(2**31) - 1, -(2**63) - 1)

# What the fuzzing sent and got, by dialect path and status (written out at the end of the module).
FIGURES: Counter[str] = Counter()


# -- wild values ------------------------------------------------------------------------------------------

def nested(depth: int, leaf: Any = 1, as_dict: bool = True) -> Any:
    value = leaf
    for _ in range(depth):
        value = {"a": value} if as_dict else [value]
    return value


integers = st.one_of(st.sampled_from(EDGE_INTEGERS), st.integers(-(2**70), 2**70), st.integers(-5, 300))
floats = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.sampled_from((1e308, -1e308, 5e-324, 0.5)))
texts = st.one_of(st.text(st.characters(codec="utf-8"), max_size=30),
                  st.sampled_from(("", " ", "\x00", "\u202e\ud7ff\U0001f600", "A" * 5000)))
scalars = st.one_of(st.none(), st.booleans(), integers, floats, texts)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
deep_values = st.builds(nested, st.integers(1, 300), scalars, st.booleans())
wild = st.one_of(scalars, json_values, deep_values)


def maybe(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly ``valid``, sometimes a wild value instead."""
    return st.one_of(valid, valid, valid, wild)


@st.composite
def body(draw: st.DrawFn, required: dict[str, st.SearchStrategy[Any]],
         optional: dict[str, st.SearchStrategy[Any]]) -> dict[str, Any]:
    """A valid-shaped body (the required fields and a random subset of the optional ones), then in half of
    the cases one to three mutations: a field (required or optional) left out or given a wild value."""
    fields = {name: draw(strategy) for name, strategy in required.items()}
    fields.update(draw(st.fixed_dictionaries({}, optional=optional)))
    for _ in range(draw(st.sampled_from((0, 0, 0, 1, 1, 2, 3)))):
        name = draw(st.sampled_from(sorted({*required, *optional})))
        if draw(st.booleans()):
            fields.pop(name, None)
        else:
            fields[name] = draw(wild)
    return fields


# -- valid-shaped pieces -------------------------------------------------------------------------------------

models = st.sampled_from(MODELS)
token_limits = st.integers(1, 16)
temperatures = st.floats(0, 2)
unit_floats = st.floats(0.01, 1)
penalties = st.floats(-2, 2)
seeds = st.integers(0, 2**31)

schema_leaves = st.sampled_from(
    [{"type": t} for t in ("string", "integer", "number", "boolean", "null")]
    + [{"$ref": "#/$defs/x"}, {"$ref": "#"}, {"$ref": "nope"}, {"enum": [1, "a"]}, {},
       {"type": "string", "minLength": 2**40}]
)
schemas = st.one_of(
    st.recursive(schema_leaves, lambda inner: st.one_of(
        st.builds(lambda props: {"type": "object", "properties": props, "required": list(props)},
                  st.dictionaries(st.text(min_size=1, max_size=6), inner, max_size=3)),
        st.builds(lambda items: {"type": "array", "items": items, "minItems": 1}, inner),
        st.builds(lambda options: {"anyOf": options}, st.lists(inner, min_size=1, max_size=3)),
    ), max_leaves=8),
    st.builds(lambda depth: nested(depth, {"type": "string"}, True), st.integers(30, 300)).map(
        lambda tree: {"type": "object", "properties": tree}),
    st.just({"type": "object", "properties": {"x": {"$ref": "#/$defs/loop"}}, "required": ["x"],
             "$defs": {"loop": {"$ref": "#/$defs/loop"}}}),
)
tool_names = st.one_of(st.just("get_weather"), st.text(max_size=70))

chat_messages = st.lists(st.fixed_dictionaries({
    "role": st.sampled_from(("user", "user", "assistant", "system", "developer")),
    "content": st.one_of(texts, texts, st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": texts}),
                                                 min_size=1, max_size=3), texts, wild),
}), min_size=1, max_size=4)
openai_tools = st.lists(st.fixed_dictionaries({
    "type": st.just("function"),
    "function": st.fixed_dictionaries({"name": tool_names, "parameters": schemas}),
}), max_size=2)

CHAT_BODY = body(
    {"model": models, "messages": chat_messages},
    {"max_tokens": token_limits, "max_completion_tokens": token_limits, "temperature": temperatures,
     "top_p": unit_floats, "top_k": st.integers(1, 50), "seed": seeds, "n": st.just(1),
     "stop": st.lists(texts.filter(bool), max_size=4),
     "stream": st.booleans(), "stream_options": st.fixed_dictionaries({"include_usage": st.booleans()}),
     "tools": openai_tools, "tool_choice": st.sampled_from(("auto", "required", "none")),
     "response_format": st.one_of(
         st.just({"type": "json_object"}),
         st.builds(lambda s: {"type": "json_schema", "json_schema": {"name": "out", "schema": s}}, schemas)),
     "logprobs": st.booleans(), "top_logprobs": st.integers(0, 5), "presence_penalty": penalties,
     "frequency_penalty": penalties, "user": texts,
     "reasoning_effort": st.sampled_from(("low", "medium", "high")), "parallel_tool_calls": st.booleans()},
)

COMPLETIONS_BODY = body(
    {"model": models, "prompt": st.one_of(texts, texts, st.lists(texts, min_size=1, max_size=1),
                                           st.lists(st.integers(0, 50000), max_size=5))},
    {"max_tokens": token_limits, "temperature": temperatures, "top_p": unit_floats, "n": st.just(1),
     "stop": st.lists(texts.filter(bool), max_size=4), "stream": st.booleans(), "seed": seeds,
     "user": texts},
)

anthropic_blocks = st.lists(st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": texts}),
    st.fixed_dictionaries({"type": st.just("tool_use"), "id": texts, "name": tool_names, "input": json_values}),
    st.fixed_dictionaries({"type": st.just("tool_result"), "tool_use_id": texts, "content": maybe(texts)}),
    st.fixed_dictionaries({"type": st.just("image"), "source": st.fixed_dictionaries(
        {"type": st.just("base64"), "media_type": st.just("image/png"), "data": texts})}),
    st.fixed_dictionaries({"type": st.just("thinking"), "thinking": texts, "signature": texts}),
), max_size=3)
anthropic_messages = st.lists(st.fixed_dictionaries({
    "role": st.just("user"),
    "content": st.one_of(texts, texts, anthropic_blocks, texts, wild),
}), min_size=1, max_size=3)
anthropic_tools = st.lists(st.fixed_dictionaries({"name": tool_names, "input_schema": schemas}), max_size=2)
ANTHROPIC_OPTIONAL = {
    "system": st.one_of(texts, st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": texts}), max_size=2)),
    "tools": anthropic_tools,
    "tool_choice": st.fixed_dictionaries({"type": st.sampled_from(("auto", "any", "tool", "none"))},
                                         optional={"name": tool_names}),
    "thinking": st.fixed_dictionaries({"type": st.sampled_from(("enabled", "disabled")),
                                       "budget_tokens": st.integers(1, 4096)}),
}
MESSAGES_BODY = body(
    {"model": models, "max_tokens": token_limits, "messages": anthropic_messages},
    {**ANTHROPIC_OPTIONAL, "temperature": st.floats(0, 1), "top_p": unit_floats, "top_k": st.integers(1, 50),
     "stop_sequences": st.lists(texts.filter(bool), max_size=4), "stream": st.booleans(),
     "metadata": st.fixed_dictionaries({"user_id": texts})},
)
COUNT_TOKENS_BODY = body({"model": models, "messages": anthropic_messages}, ANTHROPIC_OPTIONAL)

responses_input = st.one_of(texts, st.lists(st.one_of(
    st.fixed_dictionaries({"role": st.sampled_from(("user", "assistant", "system", "developer")), "content": texts}),
    st.fixed_dictionaries({"type": st.just("message"), "role": st.just("user"), "content": st.lists(
        st.fixed_dictionaries({"type": st.sampled_from(("input_text", "output_text", "input_image")), "text": texts}),
        max_size=2)}),
    st.fixed_dictionaries({"type": st.just("function_call_output"), "call_id": texts, "output": maybe(texts)}),
    st.fixed_dictionaries({"type": st.just("function_call"), "call_id": texts, "name": tool_names,
                           "arguments": texts}),
    json_values,
), max_size=4))
RESPONSES_BODY = body(
    {"model": models, "input": responses_input},
    {"instructions": texts, "max_output_tokens": token_limits, "temperature": temperatures, "top_p": unit_floats,
     "tools": st.lists(st.fixed_dictionaries({"type": st.just("function"), "name": tool_names,
                                              "parameters": schemas}), max_size=2),
     "tool_choice": st.sampled_from(("auto", "required", "none")),
     "text": st.builds(lambda s: {"format": {"type": "json_schema", "name": "out", "schema": s}}, schemas),
     "stream": st.booleans(), "store": st.booleans(), "previous_response_id": texts,
     "reasoning": st.fixed_dictionaries({"effort": st.sampled_from(("low", "medium", "high"))}),
     "truncation": st.sampled_from(("auto", "disabled")), "metadata": st.dictionaries(texts, texts, max_size=3),
     "include": st.lists(texts, max_size=3), "parallel_tool_calls": st.booleans()},
)


# -- checks ---------------------------------------------------------------------------------------------------

def is_openai_error(payload: Any) -> bool:
    error = payload.get("error") if isinstance(payload, dict) else None
    return isinstance(error, dict) and isinstance(error.get("message"), str) and isinstance(error.get("type"), str)


def is_anthropic_error(payload: Any) -> bool:
    error = payload.get("error") if isinstance(payload, dict) else None
    return (payload.get("type") == "error" and isinstance(error, dict)
            and isinstance(error.get("type"), str) and isinstance(error.get("message"), str))


def stream_error_events(text: str) -> list[str]:
    """The data lines of an SSE body that are error events (an OpenAI error chunk, an Anthropic or
    Responses ``error`` event, a failed response)."""
    errors = []
    for line in text.splitlines():
        if not line.startswith("data: {"):
            continue
        event = json.loads(line[6:])
        if "error" in event and event.get("type") in (None, "error") or event.get("type") == "response.failed":
            errors.append(line[:500])
    return errors


def check_answer(path: str, sent: Any, response: httpx.Response) -> None:
    """No 5xx; a 4xx in the dialect's error shape; a 200 stream without an error event."""
    FIGURES[f"{path} {response.status_code}"] += 1
    FIGURES["requests"] += 1
    repro = f"{path} body {str(sent)[:2000]!r} -> {response.status_code} {response.text[:1000]!r}"
    assert response.status_code < 500, repro
    if response.status_code >= 400:
        shape = is_anthropic_error if path.startswith(ANTHROPIC_PATHS) else is_openai_error
        assert shape(response.json()), repro
        assert "Traceback" not in response.text, repro
    elif response.headers.get("content-type", "").startswith("text/event-stream"):
        assert not stream_error_events(response.text), repro


@pytest.fixture(scope="module")
def client(router_cluster: RouterProcess) -> Iterator[httpx.Client]:  # noqa: F811
    """One keep-alive connection to the router for all of a module's requests."""
    with httpx.Client(base_url=router_cluster.base_url, timeout=60,
                      limits=httpx.Limits(max_connections=1, max_keepalive_connections=1)) as http:
        yield http


@pytest.fixture(scope="module", autouse=True)
def figures(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    yield
    out = Path(tmp_path_factory.getbasetemp()) / "fuzz_figures.json"
    out.write_text(json.dumps(dict(sorted(FIGURES.items())), indent=1))
    print(f"\nfuzz figures ({out}): {json.dumps(dict(sorted(FIGURES.items())))}")


# -- the tests ------------------------------------------------------------------------------------------------

DIALECT_BODIES = {
    "/v1/chat/completions": CHAT_BODY,
    "/v1/completions": COMPLETIONS_BODY,
    "/v1/messages": MESSAGES_BODY,
    "/v1/messages/count_tokens": COUNT_TOKENS_BODY,
    "/v1/responses": RESPONSES_BODY,
}


@pytest.mark.parametrize("path", list(DIALECT_BODIES))
@FUZZ
@given(data=st.data())
def test_dialect_bodies_fuzz(client: httpx.Client, path: str, data: st.DataObject) -> None:
    payload = data.draw(DIALECT_BODIES[path], label="body")
    check_answer(path, payload, client.post(path, json=payload))


@settings(FUZZ, max_examples=40)
@given(path=st.sampled_from(("/v1/chat/completions", "/v1/completions", "/v1/messages", "/v1/responses")),
       raw=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode),
                     st.sampled_from((b"", b"{", b"[]", b"null", b"1e999999", b'{"model": "rt-sim"' * 3,
                                      b"[" * 5000 + b"]" * 5000, b'{"a":' * 300 + b"1" + b"}" * 300))))
def test_bodies_that_are_not_json_objects(client: httpx.Client, path: str, raw: bytes) -> None:
    check_answer(path, raw, client.post(path, content=raw, headers={"content-type": "application/json"}))


@settings(FUZZ, max_examples=40)
@given(method=st.sampled_from(("GET", "DELETE")), suffix=st.sampled_from(("", "/input_items")),
       response_id=st.one_of(st.text(min_size=1, max_size=300), st.sampled_from(("resp_", "resp_" + "0" * 64, ".."))))
def test_stored_response_routes_with_random_ids(client: httpx.Client, method: str, suffix: str,
                                                response_id: str) -> None:
    if method == "DELETE" and suffix:
        return
    path = f"/v1/responses/{quote(response_id, safe='')}{suffix}"
    check_answer("/v1/responses/{id}", response_id, client.request(method, path))
