"""Every response object and streamed event of /v1/responses is valid Open Responses (tests/open_responses_schema.py).

Through a real router and sim replicas, for plain text, a tool call, a reasoning model, a
json_schema format and a truncated answer: the JSON answer, ``GET /v1/responses/{id}`` of the
stored copy, and every SSE event as it is on the wire (the event name is its ``type``; the
response snapshots inside ``response.created`` ... ``response.completed`` are whole response
resources). Request parameters come back with their effective defaults; a failed stream ends
with OpenAI's ``error`` event (the one event that is not the spec's: see router/dialects/
responses/stream.py) and a valid ``response.failed``; ``input_image`` reaches models that
declare vision, the ``sim`` model of deploy/local-sim.yaml included.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from fleetgate.core import events as ev
from fleetgate.router.canonical.fold import CompletionFolder
from fleetgate.router.dialects.responses.conversation import normalize_items
from fleetgate.router.dialects.responses.protocol import ResponsesRequest
from fleetgate.router.dialects.responses.request import to_generate_request
from fleetgate.router.dialects.responses.response import response_shell
from fleetgate.router.dialects.responses.stream import ResponseBuilder
from fleetgate.router.errors import ApiError, ErrorKind
from open_responses_schema import check_event, check_response
from router_process import RouterProcess, router_cluster, router_factory, sim_router  # noqa: F401
from sse_frames import named_events

LOCAL_SIM_CONFIG = Path(__file__).resolve().parent.parent / "deploy" / "local-sim.yaml"

WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
CITY_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
               "additionalProperties": False}
# A 1x1 PNG.
PIXEL = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQ"
         "AAAABJRU5ErkJggg==")

# request, then the output item types and the status it must end with
CASES: dict[str, tuple[dict[str, Any], list[str], str]] = {
    "text": ({"model": "rt-sim", "input": "Say hello", "instructions": "Be brief.", "metadata": {"t": "1"}},
             ["message"], "completed"),
    "tool_call": ({"model": "rt-sim", "input": "Weather in Paris?", "tools": [WEATHER_TOOL],
                   "tool_choice": "required"}, ["function_call"], "completed"),
    "reasoning": ({"model": "rt-reasoning", "input": "Think, then answer",
                   "reasoning": {"effort": "high", "summary": "auto"}}, ["reasoning", "message"], "completed"),
    "json_schema": ({"model": "rt-sim", "input": "Name a city",
                     "text": {"format": {"type": "json_schema", "name": "city", "schema": CITY_SCHEMA}}},
                    ["message"], "completed"),
    "truncated": ({"model": "rt-sim", "input": "A long answer", "max_output_tokens": 3}, ["message"], "incomplete"),
}


def _post(router: RouterProcess, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{router.base_url}/v1/responses", json=body, timeout=30)


def _stored(router: RouterProcess, response_id: str) -> dict[str, Any]:
    answer = httpx.get(f"{router.base_url}/v1/responses/{response_id}", timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _streamed(router: RouterProcess, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The payloads of a streamed create, each checked to be named by its own type."""
    answer = httpx.post(f"{router.base_url}/v1/responses", json={**body, "stream": True}, timeout=30)
    assert answer.status_code == 200, answer.text
    events = named_events(answer.content)
    assert all(name == payload["type"] for name, payload in events)
    return [payload for _, payload in events]


def _check_finished(response: dict[str, Any], status: str, item_types: list[str]) -> None:
    """A finished response: valid, with this status and output, ``completed_at`` set exactly when completed."""
    check_response(response)
    assert response["status"] == status
    assert [item["type"] for item in response["output"]] == item_types
    if status == "completed":
        assert response["created_at"] <= response["completed_at"] <= time.time() + 1
    else:
        assert response["completed_at"] is None


@pytest.mark.parametrize("case", list(CASES))
def test_json_answer_and_its_stored_copy_are_valid(sim_router: RouterProcess, case: str):
    body, item_types, status = CASES[case]
    answer = _post(sim_router, body)
    assert answer.status_code == 200, answer.text
    response = answer.json()
    _check_finished(response, status, item_types)
    assert _stored(sim_router, response["id"]) == response
    if case == "json_schema":
        assert set(json.loads(response["output"][0]["content"][0]["text"])) == {"city"}
        assert response["text"]["format"]["strict"] is True


@pytest.mark.parametrize("case", list(CASES))
def test_every_streamed_event_is_valid(sim_router: RouterProcess, case: str):
    body, item_types, status = CASES[case]
    events = _streamed(sim_router, body)
    for event in events:
        check_event(event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    created, in_progress, final = events[0]["response"], events[1]["response"], events[-1]["response"]
    assert created["status"] == in_progress["status"] == "in_progress"
    assert created["completed_at"] is None and created["usage"] is None
    _check_finished(final, status, item_types)
    assert _stored(sim_router, final["id"]) == final


def test_request_parameters_are_echoed_with_their_effective_defaults(sim_router: RouterProcess):
    defaults = _post(sim_router, {"model": "rt-sim", "input": "hi"}).json()
    check_response(defaults)
    assert {name: defaults[name] for name in (
        "temperature", "top_p", "presence_penalty", "frequency_penalty", "top_logprobs", "max_tool_calls",
        "service_tier", "safety_identifier", "prompt_cache_key", "max_output_tokens", "truncation", "store",
        "background", "parallel_tool_calls", "tool_choice", "tools", "text", "user", "previous_response_id",
    )} == {
        "temperature": 1.0, "top_p": 1.0, "presence_penalty": 0.0, "frequency_penalty": 0.0, "top_logprobs": 0,
        "max_tool_calls": None, "service_tier": "default", "safety_identifier": None, "prompt_cache_key": None,
        "max_output_tokens": None, "truncation": "disabled", "store": True, "background": False,
        "parallel_tool_calls": True, "tool_choice": "auto", "tools": [], "text": {"format": {"type": "text"}},
        "user": None, "previous_response_id": None,
    }
    given = {"temperature": 0.3, "top_p": 0.8, "presence_penalty": 0.5, "frequency_penalty": -0.25, "top_logprobs": 2,
             "max_tool_calls": 4, "safety_identifier": "user-7f3a", "prompt_cache_key": "repo-main",
             "max_output_tokens": 20, "user": "u1"}
    echoed = _post(sim_router, {"model": "rt-sim", "input": "hi", "service_tier": "priority", **given}).json()
    check_response(echoed)
    assert {name: echoed[name] for name in given} == given
    # One tier serves every request.
    assert echoed["service_tier"] == "default"


def test_parameters_out_of_range_are_a_400(sim_router: RouterProcess):
    for field, value in [("presence_penalty", 2.5), ("frequency_penalty", -3), ("top_logprobs", 21),
                         ("max_tool_calls", 0)]:
        answer = _post(sim_router, {"model": "rt-sim", "input": "hi", field: value})
        assert answer.status_code == 400, (field, answer.text)
        assert answer.json()["error"]["type"] == "invalid_request_error"


def test_penalties_reach_the_canonical_sampling():
    request = ResponsesRequest.model_validate(
        {"model": "sim", "input": "hi", "presence_penalty": 0.5, "frequency_penalty": -0.25})
    sampling = to_generate_request(request, normalize_items(request.items), "req-1").sampling
    assert (sampling.presence_penalty, sampling.frequency_penalty) == (0.5, -0.25)
    unset = ResponsesRequest.model_validate({"model": "sim", "input": "hi"})
    sampling = to_generate_request(unset, normalize_items(unset.items), "req-2").sampling
    assert not sampling.HasField("presence_penalty") and not sampling.HasField("frequency_penalty")


def test_a_failure_mid_stream_ends_with_openais_error_event_then_a_valid_failed_response():
    """Every event but ``error`` is valid Open Responses; ``error`` is OpenAI's (top-level code and message),
    not the spec's (a nested ``error`` payload), because OpenAI's SDKs raise on any event with an ``error`` key."""
    request = ResponsesRequest.model_validate({"model": "sim", "input": "hi"})
    builder = ResponseBuilder(response_shell(request, "resp_test", int(time.time())))
    folder = CompletionFolder()
    out = builder.open()
    for event in (ev.started(3, "r"), ev.text("partial")):
        out.extend(builder.feed(folder.add(event)))
    out.extend(builder.fail(ApiError(503, ErrorKind.OVERLOADED, "replica went away")))
    *before, error, failed = [payload for _, payload in out]
    for payload in (*before, failed):
        check_event(payload)
    assert error == {"code": "server_error", "message": "replica went away", "param": None,
                     "sequence_number": failed["sequence_number"] - 1, "type": "error"}
    assert failed["type"] == "response.failed" and failed["response"]["status"] == "failed"
    assert failed["response"]["error"] == {"code": "server_error", "message": "replica went away"}
    assert failed["response"]["completed_at"] is None


def _image_request(model: str) -> dict[str, Any]:
    return {"model": model, "input": [{"role": "user", "content": [
        {"type": "input_text", "text": "What is in this picture?"},
        {"type": "input_image", "image_url": PIXEL, "detail": "low"},
    ]}]}


def test_input_image_reaches_a_model_that_declares_vision(sim_router: RouterProcess):
    answer = _post(sim_router, _image_request("rt-vision"))
    assert answer.status_code == 200, answer.text
    _check_finished(answer.json(), "completed", ["message"])
    refused = _post(sim_router, _image_request("rt-sim"))
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "image_not_supported"


def test_the_local_sim_model_accepts_input_image(replica_factory, router_factory):
    replica_factory("sim", LOCAL_SIM_CONFIG)
    router = router_factory(LOCAL_SIM_CONFIG)
    router.wait_for_replicas("sim", 1)
    answer = _post(router, _image_request("sim"))
    assert answer.status_code == 200, answer.text
    _check_finished(answer.json(), "completed", ["message"])
