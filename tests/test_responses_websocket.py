"""WebSocket mode of the Responses API end to end: a WebSocket client -> router processes -> Redis -> sim replicas.

What a client of ``GET /v1/responses`` (upgraded) notices: the events of a
response are the SSE stream's (the same JSON objects, ids apart), one message
each; several responses follow one another on one socket (also through the
official SDK's ``client.responses.connect()``), in the order they were sent;
``store: false`` turns continue from the connection's own cache, which nothing
else sees; ``store: true`` responses are the store's, shared with HTTP; a
``generate: false`` warm-up answers an empty response no replica made, which a
turn continues by id; an unknown ``previous_response_id`` is an ``error`` event
with ``previous_response_not_found`` after which the socket still serves, and a
failed continuation evicts the id it continued; a refused key is an ``error``
event and close code 1008; a client that disconnects mid-stream aborts the
replica's request; the calls count in the router's request metrics as HTTP
calls do.

The sim counts every word of the prompt it is sent, so equal ``input_tokens``
for a continuation and for the same conversation sent in full means the router
rebuilt exactly that conversation.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from openai.types.responses import ResponseCompletedEvent
from openai.types.responses.responses_server_event import ResponseWsError
from pydantic import TypeAdapter
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from agent_clients import CODEX_WEBSOCKET_CONNECTED, run_codex
from fleetgate.core.local_processes import wait_until
from keys_helpers import create_key
from router_process import ROUTER_CONFIG, RouterProcess, router_cluster, router_factory, sim_router  # noqa: F401

TERMINAL = {"response.completed", "response.incomplete", "response.failed"}
WS_ERROR = TypeAdapter(ResponseWsError)
LOOKUP_TOOL = {
    "type": "function",
    "name": "lookup",
    "description": "Look a word up",
    "parameters": {"type": "object", "properties": {"word": {"type": "string"}}, "required": ["word"]},
}


def _socket(router: RouterProcess, key: str | None = None) -> ClientConnection:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    url = router.base_url.replace("http://", "ws://", 1) + "/v1/responses"
    return connect(url, additional_headers=headers, open_timeout=10, close_timeout=5)


def _events(ws: ClientConnection) -> list[dict[str, Any]]:
    """The events of one answer: up to its terminal event, or the error event that stands for it."""
    events: list[dict[str, Any]] = []
    while True:
        event = json.loads(ws.recv(timeout=30))
        events.append(event)
        if event["type"] in TERMINAL or (event["type"] == "error" and "status" in event):
            return events


def _create(ws: ClientConnection, **request: Any) -> list[dict[str, Any]]:
    ws.send(json.dumps({"type": "response.create", **request}))
    return _events(ws)


def _response(ws: ClientConnection, **request: Any) -> dict[str, Any]:
    """The final response object of one ``response.create`` (which must complete)."""
    events = _create(ws, **request)
    assert events[-1]["type"] == "response.completed", events[-1]
    return events[-1]["response"]


def _sse_events(router: RouterProcess, **request: Any) -> list[dict[str, Any]]:
    with httpx.stream("POST", f"{router.base_url}/v1/responses", json={**request, "stream": True}, timeout=30) as sse:
        assert sse.status_code == 200
        return [json.loads(line[6:]) for line in sse.iter_lines() if line.startswith("data: ")]


def _with_placeholders(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events with their ids and times replaced by placeholders in order of first appearance (the same
    id twice stays the same placeholder), so two calls' events compare equal when only those differ."""
    seen: dict[str, str] = {}

    def walk(value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            return {k: walk(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        if key in ("created_at", "completed_at") and value is not None:
            return "<time>"
        if key in ("id", "item_id", "call_id") and isinstance(value, str):
            return seen.setdefault(value, f"<id{len(seen)}>")
        return value

    return [walk(event) for event in events]


def _error(event: dict[str, Any]) -> ResponseWsError:
    """An error event, validated as the SDK's WebSocket error (every field it sets, nothing else)."""
    error = WS_ERROR.validate_python(event)
    assert error.model_dump(exclude_unset=True) == event
    return error


# ------------------------------------------------------------------ the events


@pytest.mark.parametrize("request_fields", [
    {"model": "rt-echo", "input": "The same events, please", "instructions": "Be brief.", "metadata": {"t": "1"}},
    {"model": "rt-reasoning", "input": "What is the weather in Paris?", "tools": [LOOKUP_TOOL],
     "tool_choice": "required"},
])
def test_events_are_the_sse_stream_events(sim_router: RouterProcess, request_fields):
    with _socket(sim_router) as ws:
        over_socket = _create(ws, **request_fields)
    over_sse = _sse_events(sim_router, **request_fields)
    assert _with_placeholders(over_socket) == _with_placeholders(over_sse)
    assert [e["sequence_number"] for e in over_socket] == list(range(len(over_socket)))
    assert ResponseCompletedEvent.model_validate(over_socket[-1]).response.status == "completed"


def test_two_responses_on_one_socket_through_the_sdk(sim_router: RouterProcess):
    def served() -> float:
        return sim_router.metric("fleetgate_requests_total", model="rt-echo", dialect="responses", stream="true",
                                 status="200")

    before = served()
    client = sim_router.openai()
    answers = []
    with client.responses.connect() as connection:
        for text in ("First turn", "Second turn"):
            connection.response.create(model="rt-echo", input=text, store=False)
            for event in connection:
                if event.type == "response.completed":
                    answers.append(event.response)
                    break
    assert [a.output_text for a in answers] == ["First turn", "Second turn"]
    assert answers[0].id != answers[1].id and all(a.status == "completed" for a in answers)
    assert served() == before + 2


def test_messages_sent_ahead_are_answered_in_order_each_lane_echoed(sim_router: RouterProcess):
    with _socket(sim_router) as ws:
        for text, lane in (("one", "lane-a"), ("two", "lane-b"), ("three", None)):
            fields = {"stream_id": lane} if lane else {}
            ws.send(json.dumps({"type": "response.create", "model": "rt-echo", "input": text, **fields}))
        answers = [_events(ws) for _ in range(3)]
    assert [a[-1]["response"]["output"][0]["content"][0]["text"] for a in answers] == ["one", "two", "three"]
    assert {e.get("stream_id") for e in answers[0]} == {"lane-a"}
    assert {e.get("stream_id") for e in answers[1]} == {"lane-b"}
    assert all("stream_id" not in e for e in answers[2])


# ------------------------------------------------------------------ continuations


def test_store_false_continues_from_the_connection_cache_only(sim_router: RouterProcess):
    with _socket(sim_router) as ws:
        first = _response(ws, model="rt-echo", input="My colour is blue", instructions="Be brief.", store=False)
        second = _response(ws, model="rt-echo", input="What is my colour?", previous_response_id=first["id"],
                           instructions="Be brief.", store=False)
        third = _response(ws, model="rt-echo", input="Say it again", previous_response_id=second["id"],
                          store=False)
    in_full = sim_router.openai().responses.create(model="rt-echo", input=[
        {"role": "user", "content": "My colour is blue"}, {"role": "assistant", "content": "My colour is blue"},
        {"role": "user", "content": "What is my colour?"}, {"role": "assistant", "content": "What is my colour?"},
        {"role": "user", "content": "Say it again"},
    ], store=False)
    assert third["usage"]["input_tokens"] == in_full.usage.input_tokens
    # Nothing was stored, and another connection does not see this one's cache.
    assert httpx.get(f"{sim_router.base_url}/v1/responses/{first['id']}").status_code == 404
    with _socket(sim_router) as other:
        [refused] = _create(other, model="rt-echo", input="And?", previous_response_id=second["id"], store=False)
    assert _error(refused).error.code == "previous_response_not_found"


def test_store_true_continues_through_the_store_shared_with_http(sim_router: RouterProcess):
    client = sim_router.openai()
    over_http = client.responses.create(model="rt-echo", input="Stored over HTTP")
    with _socket(sim_router) as ws:
        over_socket = _response(ws, model="rt-echo", input="Continued over the socket",
                                previous_response_id=over_http.id)
    assert client.responses.retrieve(over_socket["id"]).output_text == "Continued over the socket"
    items = client.responses.input_items.list(over_socket["id"], order="asc")
    assert [item.content[0].text for item in items] == ["Stored over HTTP", "Stored over HTTP",
                                                         "Continued over the socket"]
    with _socket(sim_router) as ws:
        again = _response(ws, model="rt-echo", input="From a new socket", previous_response_id=over_socket["id"])
    assert again["usage"]["input_tokens"] > over_socket["usage"]["input_tokens"]


def test_a_warm_up_generates_nothing_and_is_continued_by_id(sim_router: RouterProcess):
    with _socket(sim_router) as ws:
        warm_up = _create(ws, model="rt-echo", input="Context to keep", instructions="Be brief.", store=False,
                          generate=False)
        warmed = warm_up[-1]["response"]
        turn = _response(ws, model="rt-echo", input="Now answer", previous_response_id=warmed["id"],
                         instructions="Be brief.", store=False)
    assert [e["type"] for e in warm_up] == ["response.created", "response.in_progress", "response.completed"]
    # No replica generated it: the sim counts every prompt word it is sent.
    assert warmed["output"] == [] and warmed["usage"]["input_tokens"] == warmed["usage"]["output_tokens"] == 0
    in_full = sim_router.openai().responses.create(model="rt-echo", instructions="Be brief.", store=False, input=[
        {"role": "user", "content": "Context to keep"}, {"role": "user", "content": "Now answer"}])
    assert turn["usage"]["input_tokens"] == in_full.usage.input_tokens
    assert turn["output"][0]["content"][0]["text"] == "Now answer"


def test_unknown_id_is_an_error_event_and_the_socket_stays_usable(sim_router: RouterProcess):
    with _socket(sim_router) as ws:
        [refused] = _create(ws, model="rt-echo", input="Go on", previous_response_id="resp_unknown", store=False)
        after = _response(ws, model="rt-echo", input="Still here")
    error = _error(refused)
    assert (error.status, error.error.type, error.error.code, error.error.param) == (
        400, "invalid_request_error", "previous_response_not_found", "previous_response_id")
    assert "resp_unknown" in error.error.message
    assert after["output"][0]["content"][0]["text"] == "Still here"


def test_a_failed_continuation_evicts_the_id_it_continued(sim_router: RouterProcess):
    with _socket(sim_router) as ws:
        first = _response(ws, model="rt-echo", input="Remember me", store=False)
        [invalid] = _create(ws, model="rt-echo", input="Again", previous_response_id=first["id"], store=False,
                            max_output_tokens=0)
        [evicted] = _create(ws, model="rt-echo", input="Again", previous_response_id=first["id"], store=False)
    assert _error(invalid).error.param == "max_output_tokens"
    assert _error(evicted).error.code == "previous_response_not_found"


def test_messages_that_are_not_a_create(sim_router: RouterProcess):
    with _socket(sim_router) as ws:
        ws.send("{not json")
        [not_json] = _events(ws)
        ws.send(json.dumps({"type": "response.cancel"}))
        [unknown_type] = _events(ws)
        ws.send(json.dumps({"type": "response.create", "input": "no model"}))
        [no_model] = _events(ws)
        ws.send(json.dumps({"type": "response.processed", "response_id": "resp_x"}))  # acknowledged: no answer
        answer = _response(ws, model="rt-echo", input="Fine")
    assert _error(not_json).status == 400 and "not valid JSON" in not_json["error"]["message"]
    assert _error(unknown_type).error.param == "type"
    assert _error(no_model).error.param == "model"
    assert answer["status"] == "completed"


# ------------------------------------------------------------------ keys and disconnects


def test_the_key_is_checked_at_the_handshake(router_factory, redis_server, router_cluster):
    router = router_factory(env={"FLEETGATE_ROUTER__AUTH": "true"})
    router.wait_for_replicas("rt-echo", 1)
    for key in (None, "sk-fg-wrong"):
        with _socket(router, key) as ws:
            [refused] = _events(ws)
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=10)
        assert (_error(refused).status, refused["error"]["type"]) == (401, "authentication_error")
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    secret = create_key(redis_server.url, "websocket-key")
    client = router.openai(secret)
    with client.responses.connect() as connection:
        connection.response.create(model="rt-echo", input="With a key")
        completed = next(e for e in connection if e.type == "response.completed")
    assert completed.response.output_text == "With a key"
    assert client.responses.retrieve(completed.response.id).output_text == "With a key"


def test_disconnect_mid_stream_aborts_the_replica_request(router_factory, replica_factory):
    replica = replica_factory("rt-slow", config=ROUTER_CONFIG)
    router = router_factory()
    router.wait_for_replicas("rt-slow", 1)
    with _socket(router) as ws:
        ws.send(json.dumps({"type": "response.create", "model": "rt-slow", "input": "Talk for a long time"}))
        deltas = 0
        while deltas < 3:
            deltas += json.loads(ws.recv(timeout=30))["type"] == "response.output_text.delta"
        wait_until(lambda: (r := replica.registry_record()) is not None and r.load.running == 1,
                   what="the replica's heartbeat showing the request", timeout=10)
    # The socket is closed: the router cancels the call and the replica aborts it.
    wait_until(lambda: (r := replica.registry_record()) is not None and r.load.running == 0,
               what="replica load back to zero", timeout=20)
    wait_until(lambda: router.metric("fleetgate_router_replica_in_flight", model="rt-slow",
                                     replica=replica.replica_id) == 0, what="router in-flight back to zero",
               timeout=20)
    assert router.metric("fleetgate_requests_total", model="rt-slow", dialect="responses", stream="true",
                         status="499") == 1
    assert router.metric("fleetgate_requests_in_flight", model="rt-slow", dialect="responses") == 0


# ------------------------------------------------------------------ a real client


def test_codex_runs_its_tool_loop_over_one_socket(router_factory, router_cluster, tmp_path):
    """Codex CLI with ``supports_websockets``: its warm-up, then store: false turns continued by id."""
    router = router_factory(env={"FLEETGATE_ROUTER__MAX_BODY_BYTES": str(32 * 1024 * 1024)})
    router.wait_for_replicas("rt-sim", 1)
    script = ('[[sim:call exec_command {"cmd": "echo fleetgate-$((6*7))"}]] '
              "[[sim:say The command printed: {tool_result}]] Run the command, then tell me what it printed.")
    run = run_codex(router.base_url, script, "rt-sim", tmp_path, websockets=True)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.protocol_errors() == []
    assert CODEX_WEBSOCKET_CONNECTED in run.stderr and "falling back to HTTP" not in run.stderr
    assert run.answer.startswith("The command printed:") and "fleetgate-42" in run.answer
