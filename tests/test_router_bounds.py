"""Validation owns every bound (issue 14): no input is a 500, in any dialect.

Through a real router with the sim replicas: integers beyond what the canonical proto holds, schemas nested
deeper than ``MAX_JSON_DEPTH``, ``$ref``s that do not resolve or only refer back to themselves, and recursive
schemas a tool call must follow are all 400s in the dialect's shape naming the field, with no engine or
Python internals in the message; an unknown model's error quotes at most a bounded part of its name. An
unexpected exception is a 500 in the dialect's shape that leaves the client's keep-alive connection usable
(a real uvicorn serving the router's error handlers, with a route that fails as no production route does).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import jsonschema
import orjson
import pytest
import uvicorn
from fastapi import FastAPI

from fleetgate.core.events import ErrorCode
from fleetgate.core.local_processes import free_port
from fleetgate.replicas.server import ENGINE_FAILURE_MESSAGE, ReplicaServicer
from fleetgate.router.canonical.bounds import INT32_MAX, INT64_MAX, MAX_JSON_DEPTH
from fleetgate.router.dialects.messages.dialect import MESSAGES
from fleetgate.router.dialects.openai_shape import OPENAI_SHAPE
from fleetgate.router.error_responses import dialect_router, install_error_handlers
from fleetgate.router.errors import MAX_ECHOED_CHARS
from router_process import RouterProcess, router_cluster, sim_router  # noqa: F401

MODEL = "rt-sim"
HELLO = [{"role": "user", "content": "hi"}]
ANTHROPIC_HEADERS = {"anthropic-version": "2023-06-01"}
# Words that would mean an exception's text reached the client.
INTERNALS = ("Traceback", "ValueError", "KeyError", "RecursionError", "recursion depth", "engine failure",
             "Value out of range", "out of range")


def post(router: RouterProcess, path: str, body: dict[str, Any]) -> httpx.Response:
    headers = ANTHROPIC_HEADERS if path.startswith("/v1/messages") else {}
    return httpx.post(f"{router.base_url}{path}", json=body, headers=headers, timeout=30)


def assert_no_internals(message: str) -> None:
    assert not any(word in message for word in INTERNALS), message


def assert_error(response: httpx.Response, status: int, field: str | None, *, anthropic: bool) -> str:
    """The dialect's error shape with ``status``; the message (and for OpenAI ``param``) names ``field``."""
    assert response.status_code == status, response.text
    body = response.json()
    if anthropic:
        assert set(body) == {"type", "error"} and body["type"] == "error"
        error = body["error"]
        expected_type = {400: "invalid_request_error", 404: "not_found_error", 500: "api_error"}[status]
    else:
        assert set(body) == {"error"}
        error = body["error"]
        assert set(error) == {"message", "type", "param", "code"}
        expected_type = {400: "invalid_request_error", 404: "not_found_error", 500: "server_error"}[status]
        if field is not None:
            assert error["param"] == field, error
    assert error["type"] == expected_type, error
    if field is not None:
        assert field in error["message"], error
    assert_no_internals(error["message"])
    return error["message"]


# ---------------------------------------------------------------- one request per dialect


def chat(**fields: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": HELLO, **fields}


def completions(**fields: Any) -> dict[str, Any]:
    return {"model": MODEL, "prompt": "hi", **fields}


def messages(**fields: Any) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": 16, "messages": HELLO, **fields}


def responses(**fields: Any) -> dict[str, Any]:
    return {"model": MODEL, "input": "hi", "store": False, **fields}


CHAT, COMPLETIONS, MESSAGES_PATH, RESPONSES = (
    "/v1/chat/completions", "/v1/completions", "/v1/messages", "/v1/responses",
)


# ---------------------------------------------------------------- 1. integers the proto cannot hold


@pytest.mark.parametrize(
    ("path", "build", "field", "value"),
    [
        (CHAT, chat, "max_tokens", INT32_MAX + 1),
        (CHAT, chat, "max_tokens", 2**63),
        (CHAT, chat, "max_tokens", 2**64 - 1),
        (CHAT, chat, "max_completion_tokens", INT32_MAX + 1),
        (CHAT, chat, "top_k", INT32_MAX + 1),
        (CHAT, chat, "seed", INT64_MAX + 1),
        (CHAT, chat, "seed", -(2**63) - 1),
        (CHAT, chat, "repetition_penalty", 1e39),
        (COMPLETIONS, completions, "max_tokens", INT32_MAX + 1),
        (COMPLETIONS, completions, "top_k", 2**40),
        (COMPLETIONS, completions, "seed", 2**63),
        (MESSAGES_PATH, messages, "max_tokens", INT32_MAX + 1),
        (MESSAGES_PATH, messages, "max_tokens", 2**64 - 1),
        (MESSAGES_PATH, messages, "top_k", INT32_MAX + 1),
        (RESPONSES, responses, "max_output_tokens", INT32_MAX + 1),
        (RESPONSES, responses, "max_output_tokens", 2**63),
    ],
)
def test_out_of_range_numbers_are_400_naming_the_field(
    sim_router: RouterProcess, path: str, build: Callable[..., dict[str, Any]], field: str, value: float
) -> None:
    response = post(sim_router, path, build(**{field: value}))
    assert_error(response, 400, field, anthropic=path == MESSAGES_PATH)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (CHAT, chat(max_tokens=INT32_MAX, seed=INT64_MAX, top_k=INT32_MAX)),
        (CHAT, chat(max_completion_tokens=INT32_MAX, seed=-(2**63))),
        (COMPLETIONS, completions(max_tokens=INT32_MAX)),
        (MESSAGES_PATH, messages(max_tokens=INT32_MAX, top_k=INT32_MAX)),
        (RESPONSES, responses(max_output_tokens=INT32_MAX)),
    ],
)
def test_the_largest_values_the_proto_holds_are_served(sim_router: RouterProcess, path: str, body: dict) -> None:
    response = post(sim_router, path, body)
    assert response.status_code == 200, response.text


# ---------------------------------------------------------------- 2. nesting depth


def nested(levels: int) -> dict[str, Any]:
    """A valid schema nesting ``levels`` objects (``{"items": {"items": ...}}``)."""
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(levels - 1):
        schema = {"type": "array", "items": schema}
    return schema


def nested_value(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


DEEP = nested(300)

SCHEMA_PLACES = [
    (CHAT, chat(tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object",
                                                                                        "properties": {"x": DEEP}}}}]),
     "tools[0].function.parameters"),
    (CHAT, chat(response_format={"type": "json_schema", "json_schema": {"name": "r", "schema": DEEP}}),
     "response_format.json_schema.schema"),
    (MESSAGES_PATH, messages(tools=[{"name": "f", "input_schema": {"type": "object", "properties": {"x": DEEP}}}]),
     "tools[0].parameters"),
    (MESSAGES_PATH, messages(output_config={"format": {"type": "json_schema", "schema": DEEP}}),
     "output_config.format.schema"),
    (RESPONSES, responses(tools=[{"type": "function", "name": "f", "parameters": {"type": "object",
                                                                                  "properties": {"x": DEEP}}}]),
     "tools[0].parameters"),
    (RESPONSES, responses(text={"format": {"type": "json_schema", "name": "r", "schema": DEEP}}),
     "text.format.schema"),
]


@pytest.mark.parametrize(("path", "body", "field"), SCHEMA_PLACES)
def test_a_schema_nested_too_deep_is_400(sim_router: RouterProcess, path: str, body: dict, field: str) -> None:
    message = assert_error(post(sim_router, path, body), 400, field, anthropic=path == MESSAGES_PATH)
    assert f"more than {MAX_JSON_DEPTH} levels" in message


def test_a_schema_within_the_depth_limit_is_served(sim_router: RouterProcess) -> None:
    schema = nested(MAX_JSON_DEPTH - 8)
    body = chat(response_format={"type": "json_schema", "json_schema": {"name": "r", "schema": schema}})
    response = post(sim_router, CHAT, body)
    assert response.status_code == 200, response.text
    jsonschema.validate(orjson.loads(response.json()["choices"][0]["message"]["content"]), schema)


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (CHAT, chat(messages=[*HELLO, {"role": "assistant", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": nested_value(300)}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "ok"}]),
         "messages[1].tool_calls[0].function.arguments"),
        (MESSAGES_PATH, messages(messages=[*HELLO, {"role": "assistant", "content": [
            {"type": "tool_use", "id": "c1", "name": "f", "input": nested_value(300)}]}]),
         "messages[1].content[0].input"),
    ],
)
def test_tool_call_arguments_nested_too_deep_are_400(
    sim_router: RouterProcess, path: str, body: dict, field: str
) -> None:
    assert_error(post(sim_router, path, body), 400, field, anthropic=path == MESSAGES_PATH)


@pytest.mark.parametrize(
    ("item", "field"),
    [
        ({"role": "user", "content": [{"type": "input_text", "text": "hi", "extra": nested_value(200)}]},
         "input[0].content[0].extra"),
        ({"type": "message", "role": "user", "content": "hi", "extra": nested_value(MAX_JSON_DEPTH + 1)},
         "input[0].extra"),
        ({"role": "assistant", "content": [{"type": "output_text", "text": "hi", "annotations": [nested_value(300)]}]},
         "input[0].content[0].annotations[0]"),
    ],
)
def test_a_kept_responses_field_nested_too_deep_is_400(sim_router: RouterProcess, item: dict[str, Any],
                                                       field: str) -> None:
    """Unknown fields of Responses items are kept and stored with the conversation: bounded like schemas."""
    message = assert_error(post(sim_router, RESPONSES, responses(input=[item])), 400, field, anthropic=False)
    assert f"more than {MAX_JSON_DEPTH} levels" in message


def test_a_kept_responses_field_within_the_limit_is_stored_and_continued(sim_router: RouterProcess) -> None:
    item = {"role": "user", "content": [{"type": "input_text", "text": "hi", "extra": nested_value(MAX_JSON_DEPTH)}]}
    first = post(sim_router, RESPONSES, responses(input=[item], store=True))
    assert first.status_code == 200, first.text
    second = post(sim_router, RESPONSES, responses(previous_response_id=first.json()["id"]))
    assert second.status_code == 200, second.text


# ---------------------------------------------------------------- 3. $ref


def with_tool(path: str, schema: dict[str, Any]) -> dict[str, Any]:
    """A request offering one tool ``f`` with ``schema`` that must be called."""
    if path == CHAT:
        return chat(tools=[{"type": "function", "function": {"name": "f", "parameters": schema}}],
                    tool_choice="required")
    if path == MESSAGES_PATH:
        return messages(tools=[{"name": "f", "input_schema": schema}], tool_choice={"type": "any"})
    return responses(tools=[{"type": "function", "name": "f", "parameters": schema}], tool_choice="required")


TOOL_FIELD = {CHAT: "tools[0].function.parameters", MESSAGES_PATH: "tools[0].parameters",
              RESPONSES: "tools[0].parameters"}
DANGLING = {"type": "object", "properties": {"a": {"$ref": "#/$defs/nope"}}, "required": ["a"]}
REMOTE = {"type": "object", "properties": {"a": {"$ref": "https://example.com/schema.json"}}}
CYCLE = {"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "type": "object",
         "properties": {"x": {"$ref": "#/$defs/a"}}}


@pytest.mark.parametrize("path", [CHAT, MESSAGES_PATH, RESPONSES])
@pytest.mark.parametrize(("schema", "words"), [(DANGLING, "does not resolve"), (REMOTE, "does not resolve"),
                                               (CYCLE, "refers back to itself")])
def test_a_tool_ref_that_leads_nowhere_is_400(
    sim_router: RouterProcess, path: str, schema: dict, words: str
) -> None:
    message = assert_error(post(sim_router, path, with_tool(path, schema)), 400, TOOL_FIELD[path],
                           anthropic=path == MESSAGES_PATH)
    assert words in message


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (CHAT, chat(response_format={"type": "json_schema", "json_schema": {"name": "r", "schema": DANGLING}}),
         "response_format.json_schema.schema"),
        (MESSAGES_PATH, messages(output_config={"format": {"type": "json_schema", "schema": DANGLING}}),
         "output_config.format.schema"),
        (RESPONSES, responses(text={"format": {"type": "json_schema", "name": "r", "schema": DANGLING}}),
         "text.format.schema"),
    ],
)
def test_a_response_format_ref_that_leads_nowhere_is_400(
    sim_router: RouterProcess, path: str, body: dict, field: str
) -> None:
    message = assert_error(post(sim_router, path, body), 400, field, anthropic=path == MESSAGES_PATH)
    assert "does not resolve" in message


SELF_REQUIRING = {"type": "object", "properties": {"next": {"$ref": "#"}}, "required": ["next"]}
TREE = {"type": "object", "properties": {"name": {"type": "string"}, "children": {"type": "array",
                                                                                    "items": {"$ref": "#"}}},
        "required": ["name", "children"]}


@pytest.mark.parametrize("path", [CHAT, MESSAGES_PATH, RESPONSES])
def test_a_recursive_schema_no_value_satisfies_is_a_clean_400(sim_router: RouterProcess, path: str) -> None:
    """It resolves, so the router passes it on; the replica refuses it (it cannot build a value), cleanly."""
    message = assert_error(post(sim_router, path, with_tool(path, SELF_REQUIRING)), 400, None,
                           anthropic=path == MESSAGES_PATH)
    assert "nests deeper" in message


@pytest.mark.parametrize("path", [CHAT, MESSAGES_PATH, RESPONSES])
def test_a_recursive_schema_is_served(sim_router: RouterProcess, path: str) -> None:
    response = post(sim_router, path, with_tool(path, TREE))
    assert response.status_code == 200, response.text
    body = response.json()
    if path == CHAT:
        arguments = orjson.loads(body["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"])
    elif path == MESSAGES_PATH:
        arguments = next(block["input"] for block in body["content"] if block["type"] == "tool_use")
    else:
        arguments = orjson.loads(next(item["arguments"] for item in body["output"] if item["type"] == "function_call"))
    jsonschema.validate(arguments, TREE)


class _FailingEngine:
    """An engine whose generation raises with text that must not reach a client."""

    def generate(self, request: Any) -> Any:
        async def events() -> Any:
            raise KeyError("nope: secret internals")
            yield  # pragma: no cover (makes this an async generator)

        return events()

    def load(self) -> Any:
        from fleetgate.core.registry import Load

        return Load(running=0, waiting=0, kv_cache_usage=0.0)


class _Context:
    def __init__(self) -> None:
        self.written: list[Any] = []

    async def write(self, event: Any) -> None:
        self.written.append(event)


def test_an_engine_exception_ends_the_stream_without_its_text() -> None:
    from fleetgate.v1 import replica_pb2 as pb

    servicer = ReplicaServicer(_FailingEngine(), replica_id="r-test", model_name="bounds-test")  # type: ignore[arg-type]
    context = _Context()
    asyncio.run(servicer.Generate(pb.GenerateRequest(request_id="q1"), context))  # type: ignore[arg-type]
    (event,) = context.written
    assert event.finish.reason == pb.Finish.REASON_ERROR and event.finish.error_code == ErrorCode.ERROR_CODE_INTERNAL
    assert event.finish.error_message == ENGINE_FAILURE_MESSAGE
    assert "secret" not in event.finish.error_message and "nope" not in event.finish.error_message


# ---------------------------------------------------------------- 5. echoed values


@pytest.mark.parametrize(("path", "build"), [(CHAT, chat), (COMPLETIONS, completions),
                                             (MESSAGES_PATH, messages), (RESPONSES, responses)])
def test_an_unknown_model_error_quotes_a_bounded_part_of_the_name(
    sim_router: RouterProcess, path: str, build: Callable[..., dict[str, Any]]
) -> None:
    name = "m" * 60_000
    response = post(sim_router, path, {**build(), "model": name})
    message = assert_error(response, 404, None, anthropic=path == MESSAGES_PATH)
    assert len(response.content) < 2 * MAX_ECHOED_CHARS + 400
    assert "m" * MAX_ECHOED_CHARS in message and "(60000 characters)" in message


def test_an_unknown_previous_response_error_quotes_a_bounded_part_of_the_id(sim_router: RouterProcess) -> None:
    response_id = "resp_" + "x" * 60_000
    response = post(sim_router, RESPONSES, responses(previous_response_id=response_id))
    assert response.status_code in (400, 404), response.text
    assert len(response.content) < 2 * MAX_ECHOED_CHARS + 400
    assert response.json()["error"]["param"] == "previous_response_id"
    got = httpx.get(f"{sim_router.base_url}/v1/responses/{response_id}", timeout=30)
    assert got.status_code == 404 and len(got.content) < 2 * MAX_ECHOED_CHARS + 400


# ---------------------------------------------------------------- 4. a 500 keeps the connection


@pytest.fixture(scope="module")
def failing_server() -> Iterator[str]:
    """A real uvicorn serving the router's error handlers with, per error shape, a route that raises an
    unexpected exception (test-only: no production route does) and one that answers."""
    app = FastAPI()
    install_error_handlers(app, default=OPENAI_SHAPE, path_spaces={MESSAGES_PATH: MESSAGES})
    for prefix, shape in (("/v1/chat", OPENAI_SHAPE), (MESSAGES_PATH, MESSAGES)):
        routes = dialect_router(shape)

        @routes.post(f"{prefix}/fails")
        async def fails() -> None:
            raise ZeroDivisionError("secret internals")

        @routes.get(f"{prefix}/answers")
        async def answers() -> dict[str, bool]:
            return {"ok": True}

        app.include_router(routes)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def _local_port(response: httpx.Response) -> int:
    """The client-side port of the connection ``response`` came on (the same port: the same connection)."""
    return response.extensions["network_stream"].get_extra_info("client_addr")[1]


@pytest.mark.parametrize(("prefix", "anthropic"), [("/v1/chat", False), (MESSAGES_PATH, True)])
def test_an_unexpected_exception_is_a_500_in_shape_on_a_connection_that_stays_open(
    failing_server: str, prefix: str, anthropic: bool
) -> None:
    with httpx.Client(base_url=failing_server, timeout=10) as client:
        failed = client.post(f"{prefix}/fails", json={})
        message = assert_error(failed, 500, None, anthropic=anthropic)
        assert "secret" not in message and "ZeroDivision" not in message
        assert failed.headers.get("connection", "").lower() != "close"
        failed_on = _local_port(failed)
        time.sleep(0.2)  # a server that closes the connection after the 500 has done so by now
        answered = client.get(f"{prefix}/answers")
        assert answered.status_code == 200 and answered.json() == {"ok": True}
        assert _local_port(answered) == failed_on, "the 500 closed the keep-alive connection"
