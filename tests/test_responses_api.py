"""The OpenAI Responses API end to end: the official SDK -> router processes -> real Redis -> sim replicas.

What a client notices: the exact streamed event sequence with its sequence
numbers, ids that agree between the stream, the final object and ``retrieve``,
conversations continued by ``previous_response_id`` (rebuilt exactly, function
calls included, instructions not inherited) across router processes, storage
rules (store=false, other keys, unknown ids), continuations routed to the
replica that served the previous turn, and stored responses surviving a Redis
restart. The sim counts every word of the prompt it is sent, so equal
``input_tokens`` for a continuation and for the same conversation sent in full
means the router rebuilt exactly that conversation.
"""

from __future__ import annotations

import asyncio
import json
from itertools import groupby
from pathlib import Path

import openai
import pytest
import redis.asyncio as aioredis
from openai.types.responses import Response

from conftest import RedisServer
from fleetgate.router.auth import KeyStore
from replica_process import ReplicaProcess
from router_process import RouterProcess, router_cluster, router_factory, sim_router  # noqa: F401

RESPONSES_CONFIG = Path(__file__).parent / "configs" / "responses-sim.yaml"
REPLICA_HEADER = "x-fleetgate-replica"

WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def _collapsed(types: list[str]) -> list[str]:
    """Event types with each run of delta events written once as ``<type>...``."""
    return [kind + "..." if kind.endswith(".delta") else kind for kind, _ in groupby(types)]


def _item_ids(response: Response) -> list[tuple[str, str | None]]:
    return [(item.id, getattr(item, "call_id", None)) for item in response.output]


def _comparable(response: Response) -> dict:
    """A response without what differs between two calls (ids, times)."""
    data = response.model_dump(mode="json", exclude_none=True, exclude={"id", "created_at", "completed_at"})
    for item in data["output"]:
        item.pop("id", None)
        item.pop("call_id", None)
    return data


def _stream(client: openai.OpenAI, **request) -> tuple[list, str]:
    """Every event of a streamed create, and the replica that served it."""
    with client.responses.with_streaming_response.create(stream=True, **request) as raw:
        replica = raw.headers.get(REPLICA_HEADER, "")
        events = list(raw.parse())
    return events, replica


def _stored_when_completed(client: openai.OpenAI, reader: openai.OpenAI, **request) -> tuple[Response, Response]:
    """Stream a response; the moment ``response.completed`` arrives, retrieve it through ``reader``."""
    with client.responses.stream(**request) as stream:
        for event in stream:
            if event.type == "response.completed":
                stored = reader.responses.retrieve(event.response.id)
        final = stream.get_final_response()
    return final, stored


# ------------------------------------------------------------------ one response


def test_create_usage_header_and_retrieve(sim_router: RouterProcess):
    client = sim_router.openai()
    raw = client.responses.with_raw_response.create(model="rt-sim", input="Say hello", instructions="Be brief.",
                                                     metadata={"ticket": "42"})
    response = raw.parse()
    assert raw.headers[REPLICA_HEADER].startswith("rt-sim")
    assert response.id.startswith("resp_") and response.object == "response" and response.status == "completed"
    assert response.output_text == "Lorem ipsum dolor sit amet, consectetur adipiscing elit,"
    assert (response.instructions, response.metadata, response.model) == ("Be brief.", {"ticket": "42"}, "rt-sim")
    usage = response.usage
    assert usage.output_tokens == 8 and usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert client.responses.retrieve(response.id) == response


@pytest.mark.parametrize("model, request_fields, expected", [
    ("rt-sim", {}, [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.content_part.added", "response.output_text.delta...",
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.completed",
    ]),
    ("rt-reasoning", {"tools": [WEATHER_TOOL], "tool_choice": "required"}, [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.content_part.added", "response.reasoning_text.delta...",
        "response.reasoning_text.done", "response.content_part.done", "response.output_item.done",
        "response.output_item.added", "response.function_call_arguments.delta...",
        "response.function_call_arguments.done", "response.output_item.done",
        "response.completed",
    ]),
])
def test_stream_event_sequence_and_ids(sim_router: RouterProcess, model, request_fields, expected):
    client = sim_router.openai()
    events, replica = _stream(client, model=model, input="What is the weather in Paris?", **request_fields)
    assert replica.startswith(model)
    assert _collapsed([e.type for e in events]) == expected
    assert [e.sequence_number for e in events] == list(range(len(events)))
    final = events[-1].response
    assert events[0].response.id == events[1].response.id == final.id
    added = [e.item for e in events if e.type == "response.output_item.added"]
    done = [e.item for e in events if e.type == "response.output_item.done"]
    assert [(i.id, getattr(i, "call_id", None)) for i in added] == [(i.id, getattr(i, "call_id", None)) for i in done]
    assert _item_ids(final) == [(i.id, getattr(i, "call_id", None)) for i in done]
    for event in events:
        if hasattr(event, "item_id"):
            assert event.item_id == final.output[event.output_index].id
    deltas = "".join(e.delta for e in events if e.type in ("response.output_text.delta",
                                                          "response.function_call_arguments.delta"))
    texts = "".join(getattr(i, "arguments", "") or "".join(c.text for c in getattr(i, "content", []) or []
                                                           if c.type == "output_text") for i in final.output
                    if i.type != "reasoning")
    assert deltas == texts
    assert client.responses.retrieve(final.id) == final


def test_stream_helper_final_response_equals_non_streamed(sim_router: RouterProcess):
    client = sim_router.openai()
    request = {"model": "rt-reasoning", "input": "Tell me a story", "temperature": 0, "max_output_tokens": 40}
    with client.responses.stream(**request) as stream:
        streamed = stream.get_final_response()
    plain = client.responses.create(**request)
    assert streamed.output_text == plain.output_text != ""
    assert [item.type for item in streamed.output] == ["reasoning", "message"]
    assert _comparable(Response.model_validate(streamed.model_dump())) == _comparable(plain)
    assert client.responses.retrieve(streamed.id).output_text == streamed.output_text


def test_stored_before_completed_is_sent(sim_router: RouterProcess, router_factory):
    other_router = router_factory()
    final, stored = _stored_when_completed(sim_router.openai(), other_router.openai(), model="rt-sim", input="Hi")
    assert stored.id == final.id and stored.output_text == final.output_text and stored.status == "completed"


def test_max_output_tokens_is_incomplete(sim_router: RouterProcess):
    client = sim_router.openai()
    response = client.responses.create(model="rt-sim", input="Long answer please", max_output_tokens=3)
    assert response.status == "incomplete" and response.incomplete_details.reason == "max_output_tokens"
    assert response.output_text == "Lorem ipsum dolor" and response.usage.output_tokens == 3
    assert response.output[0].status == "incomplete"
    events, _ = _stream(client, model="rt-sim", input="Long answer please", max_output_tokens=3)
    assert events[-1].type == "response.incomplete"
    assert client.responses.retrieve(events[-1].response.id).status == "incomplete"


# ------------------------------------------------------------------ conversations


def test_three_turns_each_through_a_different_router(sim_router: RouterProcess, router_factory):
    routers = [sim_router, router_factory(), router_factory()]
    for router in routers[1:]:
        router.wait_for_replicas("rt-reasoning", 1)
    clients = [router.openai() for router in routers]
    first = clients[0].responses.create(model="rt-reasoning", input="Hi, I am Ada.", instructions="Be very brief.")
    second = clients[1].responses.create(model="rt-reasoning", input="What is my name?", previous_response_id=first.id)
    third = clients[2].responses.create(model="rt-reasoning", input="Thanks!", previous_response_id=second.id)
    assert third.previous_response_id == second.id and second.instructions is None

    def input_ids(response: Response) -> list[str]:
        return [item.id for item in clients[0].responses.input_items.list(response.id, order="asc")]

    def output_ids(response: Response) -> list[str]:
        return [item.id for item in response.output]

    # Each turn's input is the previous turn's input, its output, then the new user message.
    assert input_ids(second)[:-1] == input_ids(first) + output_ids(first)
    assert input_ids(third)[:-1] == input_ids(second) + output_ids(second)
    items = list(clients[1].responses.input_items.list(third.id, order="asc"))
    assert [(i.type, getattr(i, "role", None)) for i in items] == [
        ("message", "user"), ("reasoning", None), ("message", "assistant"),
        ("message", "user"), ("reasoning", None), ("message", "assistant"),
        ("message", "user"),
    ]
    assert [i.content[0].text for i in items if i.type == "message" and i.role == "user"] == [
        "Hi, I am Ada.", "What is my name?", "Thanks!"]
    paged = list(clients[1].responses.input_items.list(third.id, order="asc", limit=2))
    assert [i.id for i in paged] == [i.id for i in items]
    newest_first = clients[1].responses.input_items.list(third.id, limit=3)
    assert [i.id for i in newest_first.data] == [i.id for i in items[::-1][:3]] and newest_first.has_more

    # The same conversation sent in full (reasoning replayed, no instructions) is exactly what the model saw.
    full = [i.model_dump(mode="json", exclude_none=True) for i in items]
    stateless = clients[0].responses.create(model="rt-reasoning", input=full, store=False)
    assert third.usage.input_tokens == stateless.usage.input_tokens


def test_function_call_loop_is_rebuilt_exactly(sim_router: RouterProcess):
    client = sim_router.openai()
    call_turn = client.responses.create(model="rt-sim", input="Weather in Paris?", instructions="Use the tools.",
                                        tools=[WEATHER_TOOL], tool_choice="required")
    (call,) = call_turn.output
    assert call.type == "function_call" and call.name == "get_weather" and call.call_id
    assert call.status == "completed" and isinstance(json.loads(call.arguments)["city"], str)

    with client.responses.stream(model="rt-sim", previous_response_id=call_turn.id, tools=[WEATHER_TOOL],
                                 input=[{"type": "function_call_output", "call_id": call.call_id,
                                         "output": '{"sky": "clear"}'}]) as stream:
        answer = stream.get_final_response()
    assert answer.status == "completed" and answer.output_text and answer.instructions is None

    items = list(client.responses.input_items.list(answer.id, order="asc"))
    assert [i.type for i in items] == ["message", "function_call", "function_call_output"]
    user, replayed_call, output = items
    assert user.role == "user" and user.content[0].text == "Weather in Paris?"
    assert replayed_call.model_dump(exclude_none=True) == call.model_dump(exclude_none=True)
    assert (output.call_id, output.output, output.id.startswith("fco_")) == (call.call_id, '{"sky": "clear"}', True)

    # The same three items sent in full, without the first turn's instructions: the prompt the model saw.
    stateless = client.responses.create(
        model="rt-sim", tools=[WEATHER_TOOL], store=False,
        input=[{"role": "user", "content": "Weather in Paris?"}, call.model_dump(exclude_none=True),
               {"type": "function_call_output", "call_id": call.call_id, "output": '{"sky": "clear"}'}],
    )
    assert answer.usage.input_tokens == stateless.usage.input_tokens
    with_instructions = client.responses.create(
        model="rt-sim", tools=[WEATHER_TOOL], store=False, instructions="Use the tools.",
        input=[i.model_dump(mode="json", exclude_none=True) for i in items],
    )
    assert with_instructions.usage.input_tokens > answer.usage.input_tokens


# ------------------------------------------------------------------ storage rules


def test_store_false_delete_and_unknown_ids_are_404(sim_router: RouterProcess):
    client = sim_router.openai()
    unstored = client.responses.create(model="rt-sim", input="Forget this", store=False)
    assert unstored.status == "completed"
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)
    with pytest.raises(openai.NotFoundError) as caught:
        client.responses.create(model="rt-sim", input="Go on", previous_response_id=unstored.id, stream=True)
    assert caught.value.body["param"] == "previous_response_id"
    assert caught.value.body["type"] == "not_found_error"

    stored = client.responses.create(model="rt-sim", input="Keep this")
    client.responses.delete(stored.id)
    for call in (client.responses.retrieve, client.responses.delete, client.responses.input_items.list):
        with pytest.raises(openai.NotFoundError):
            call(stored.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="rt-sim", input="x", previous_response_id="resp_doesnotexist")


def _new_key(redis_url: str, name: str) -> str:
    async def create() -> str:
        client = aioredis.from_url(redis_url)
        try:
            secret, _ = await KeyStore(client).create(name)
        finally:
            await client.aclose()
        return secret

    return asyncio.run(create())


def test_another_key_gets_404(router_factory, redis_server, router_cluster):
    router = router_factory(env={"FLEETGATE_ROUTER__AUTH": "true"})
    router.wait_for_replicas("rt-sim", 1)
    alice = router.openai(_new_key(redis_server.url, "alice-responses"))
    mallory = router.openai(_new_key(redis_server.url, "mallory-responses"))
    response = alice.responses.create(model="rt-sim", input="My secret")
    assert alice.responses.retrieve(response.id).output_text == response.output_text
    for call in (mallory.responses.retrieve, mallory.responses.input_items.list, mallory.responses.delete):
        with pytest.raises(openai.NotFoundError):
            call(response.id)
    with pytest.raises(openai.NotFoundError):
        mallory.responses.create(model="rt-sim", input="And?", previous_response_id=response.id)
    assert alice.responses.create(model="rt-sim", input="And?", previous_response_id=response.id).status == "completed"
    with pytest.raises(openai.AuthenticationError):
        router.openai("sk-fg-wrong").responses.retrieve(response.id)


# ------------------------------------------------------------------ replicas and Redis


def test_continuations_stay_on_their_replica_and_move_when_it_dies(replica_factory, router_factory):
    replicas = {r.replica_id: r for r in (replica_factory("rs-affine", RESPONSES_CONFIG) for _ in range(3))}
    router = router_factory(RESPONSES_CONFIG)
    router.wait_for_replicas("rs-affine", 3)
    client = router.openai()
    raw = client.responses.with_raw_response.create(model="rs-affine", input="Turn 1")
    producer, previous = raw.headers[REPLICA_HEADER], raw.parse()
    for turn in range(2, 6):
        raw = client.responses.with_raw_response.create(model="rs-affine", input=f"Turn {turn}",
                                                        previous_response_id=previous.id)
        assert raw.headers[REPLICA_HEADER] == producer
        previous = raw.parse()
    assert router.metric("fleetgate_affinity_total", model="rs-affine", result="hit") == 4

    replicas[producer].kill()
    raw = client.responses.with_raw_response.create(model="rs-affine", input="Turn 6", previous_response_id=previous.id)
    successor = raw.headers[REPLICA_HEADER]
    assert successor != producer and raw.parse().status == "completed"
    after = client.responses.with_raw_response.create(model="rs-affine", input="Turn 7",
                                                      previous_response_id=raw.parse().id)
    assert after.headers[REPLICA_HEADER] == successor
    assert len(list(client.responses.input_items.list(after.parse().id))) == 13  # 7 user turns + 6 answers


def test_mid_stream_failure_is_an_error_event_then_failed(replica_factory, router_factory):
    replica_factory("rs-dies", RESPONSES_CONFIG)
    router = router_factory(RESPONSES_CONFIG)
    router.wait_for_replicas("rs-dies", 1)
    events, _ = _stream(router.openai(), model="rs-dies", input="Talk until you drop")
    assert [e.type for e in events[-5:]] == [
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "error", "response.failed"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    failed = events[-1].response
    assert failed.status == "failed" and failed.error.code == "server_error"
    assert "mid-stream" in events[-2].message and failed.output[0].status == "incomplete"


def test_redis_restart_keeps_stored_responses_and_an_outage_is_503(tmp_path: Path):
    server = RedisServer(tmp_path / "redis")
    (tmp_path / "redis").mkdir()
    server.start()
    replica = ReplicaProcess(RESPONSES_CONFIG, "rs-affine", server.url, log_path=tmp_path / "replica.log")
    router = RouterProcess(RESPONSES_CONFIG, server.url, log_path=tmp_path / "router.log")
    try:
        replica.start()
        router.start()
        router.wait_for_replicas("rs-affine", 1)
        client = router.openai()
        first = client.responses.create(model="rs-affine", input="Remember me")

        server.stop()
        for call in (lambda: client.responses.retrieve(first.id),
                     lambda: client.responses.create(model="rs-affine", input="Lost?", previous_response_id=first.id),
                     lambda: client.responses.create(model="rs-affine", input="Store me")):
            with pytest.raises(openai.APIStatusError) as caught:
                call()
            assert caught.value.status_code == 503 and "unavailable" in caught.value.body["message"]
        events, _ = _stream(client, model="rs-affine", input="Stream and store me")
        assert [e.type for e in events[-3:]] == ["response.output_item.done", "error", "response.failed"]
        assert "unavailable" in events[-2].message

        server.start()
        router.wait_for_replicas("rs-affine", 1)
        assert client.responses.retrieve(first.id) == first
        second = client.responses.create(model="rs-affine", input="Still there?", previous_response_id=first.id)
        assert [i.type for i in client.responses.input_items.list(second.id, order="asc")] == ["message"] * 3
    finally:
        router.stop()
        replica.stop()
        server.stop()
