"""Errors through the router, with the status and body shape clients expect.

OpenAI's shape ``{"error": {"message", "type", "param", "code"}}`` everywhere but
``/v1/messages*``, which gets Anthropic's ``{"type": "error", "error": {...}}``.
The openai SDK raises its typed exceptions from these statuses.
"""

from __future__ import annotations

import httpx
import openai
import pytest

from router_process import RouterProcess, router_cluster, router_factory, sim_router  # noqa: F401

HELLO = [{"role": "user", "content": "hi"}]


def assert_openai_error(response: httpx.Response, status: int, error_type: str, param: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == error_type and error["message"]
    if param is not None:
        assert error["param"] == param
    return error


def post(router: RouterProcess, path: str, **kwargs) -> httpx.Response:
    return httpx.post(f"{router.base_url}{path}", timeout=30, **kwargs)


def test_unknown_model_is_404(sim_router: RouterProcess) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        sim_router.openai().chat.completions.create(model="no-such-model", messages=HELLO)
    error = assert_openai_error(caught.value.response, 404, "not_found_error", "model")
    assert error["code"] == "model_not_found" and "no-such-model" in error["message"]
    assert_openai_error(httpx.get(f"{sim_router.base_url}/v1/models/no-such-model"), 404, "not_found_error")


def test_unknown_route_is_404_in_shape(sim_router: RouterProcess) -> None:
    assert_openai_error(post(sim_router, "/v1/nothing", json={}), 404, "not_found_error")
    assert_openai_error(httpx.get(f"{sim_router.base_url}/v1/chat/completions"), 405, "invalid_request_error")


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"model": "rt-sim", "messages": HELLO, "temperature": "hot"}, "temperature", "number"),
        ({"model": "rt-sim", "messages": "hi"}, "messages", "list"),
        ({"model": "rt-sim", "messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role", "'user'"),
        ({"model": "rt-sim", "messages": []}, "messages", "at least 1"),
        ({"messages": HELLO}, "model", "required"),
        ({"model": "rt-sim", "messages": HELLO, "n": 2}, "n", "n=2"),
        (
            {"model": "rt-sim", "messages": [{"role": "tool", "content": "x"}]},
            "messages[0].tool_call_id",
            "tool_call_id",
        ),
        ({"model": "rt-sim", "messages": HELLO, "tool_choice": "required"}, "tool_choice", "no tools"),
        (
            {
                "model": "rt-sim",
                "messages": HELLO,
                "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": 5}}}],
            },
            "tools[0].function.parameters",
            "not a valid JSON schema",
        ),
        (
            {
                "model": "rt-sim",
                "messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}],
            },
            "messages[0].content[0]",
            "input_audio",
        ),
    ],
)
def test_invalid_requests_are_400_naming_the_field(
    sim_router: RouterProcess, body: dict, param: str, words: str
) -> None:
    error = assert_openai_error(
        post(sim_router, "/v1/chat/completions", json=body), 400, "invalid_request_error", param
    )
    assert words in error["message"]


def test_sdk_raises_bad_request_for_n_2(sim_router: RouterProcess) -> None:
    with pytest.raises(openai.BadRequestError, match="n=2"):
        sim_router.openai().chat.completions.create(model="rt-sim", messages=HELLO, n=2)


def test_malformed_json_is_400(sim_router: RouterProcess) -> None:
    response = post(
        sim_router,
        "/v1/chat/completions",
        content=b'{"model": "rt-sim", "messages": [',
        headers={"content-type": "application/json"},
    )
    error = assert_openai_error(response, 400, "invalid_request_error")
    assert "not valid JSON" in error["message"]
    assert_openai_error(post(sim_router, "/v1/chat/completions", content=b"[1, 2]"), 400, "invalid_request_error")
    assert_openai_error(post(sim_router, "/v1/chat/completions", content=b""), 400, "invalid_request_error")


def test_image_to_model_without_vision_is_400(sim_router: RouterProcess) -> None:
    content = [{"type": "text", "text": "what is it?"}, {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]
    with pytest.raises(openai.BadRequestError) as caught:
        sim_router.openai().chat.completions.create(model="rt-sim", messages=[{"role": "user", "content": content}])
    error = assert_openai_error(caught.value.response, 400, "invalid_request_error")
    assert error["message"] == "model rt-sim does not accept images"


def test_prompt_over_context_is_400(sim_router: RouterProcess) -> None:
    long_prompt = " ".join(["word"] * 100)
    with pytest.raises(openai.BadRequestError) as caught:
        sim_router.openai().chat.completions.create(
            model="rt-echo", messages=[{"role": "user", "content": long_prompt}]
        )
    error = assert_openai_error(caught.value.response, 400, "invalid_request_error")
    assert error["code"] == "context_length_exceeded" and "context" in error["message"]
    # Streaming requests are refused the same way, before any stream starts.
    response = post(
        sim_router,
        "/v1/chat/completions",
        json={"model": "rt-echo", "messages": [{"role": "user", "content": long_prompt}], "stream": True},
    )
    assert_openai_error(response, 400, "invalid_request_error")


def test_body_over_limit_is_413(sim_router: RouterProcess) -> None:
    big = [{"role": "user", "content": "x" * 70_000}]
    with pytest.raises(openai.APIStatusError) as caught:
        sim_router.openai().chat.completions.create(model="rt-sim", messages=big)
    assert_openai_error(caught.value.response, 413, "invalid_request_error")


def test_body_over_limit_without_content_length_is_413(sim_router: RouterProcess) -> None:
    def chunks():
        yield b'{"model": "rt-sim", "messages": [{"role": "user", "content": "'
        for _ in range(20):
            yield b"y" * 8192
        yield b'"}]}'

    response = post(sim_router, "/v1/chat/completions", content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in response.request.headers
    assert_openai_error(response, 413, "invalid_request_error")


def test_no_healthy_replica_is_503_with_retry_after(sim_router: RouterProcess) -> None:
    with pytest.raises(openai.InternalServerError) as caught:
        sim_router.openai().chat.completions.create(model="rt-absent", messages=HELLO)
    response = caught.value.response
    assert_openai_error(response, 503, "server_error")
    assert response.headers["retry-after"] == "3"


def test_auth_errors_are_401(router_factory, redis_server) -> None:  # noqa: F811
    router = router_factory(env={"FLEETGATE_ROUTER__AUTH": "true"})
    with pytest.raises(openai.AuthenticationError) as caught:
        router.openai(api_key="sk-fg-wrong").chat.completions.create(model="rt-sim", messages=HELLO)
    error = assert_openai_error(caught.value.response, 401, "authentication_error")
    assert error["message"] == "Invalid API key"
    missing = httpx.post(f"{router.base_url}/v1/chat/completions", json={"model": "rt-sim", "messages": HELLO})
    assert "Missing API key" in assert_openai_error(missing, 401, "authentication_error")["message"]
    assert_openai_error(httpx.get(f"{router.base_url}/v1/models"), 401, "authentication_error")
    # Not a /v1 route: no key needed.
    assert httpx.get(f"{router.base_url}/health").status_code == 200
    # The Anthropic path gets Anthropic's error shape.
    messages = httpx.post(
        f"{router.base_url}/v1/messages", json={"model": "rt-sim", "max_tokens": 5, "messages": HELLO}
    )
    assert messages.status_code == 401
    assert messages.json() == {
        "type": "error",
        "error": {"type": "authentication_error", "message": messages.json()["error"]["message"]},
    }


def test_anthropic_path_gets_anthropic_shape_for_unknown_route(sim_router: RouterProcess) -> None:
    response = post(sim_router, "/v1/messages/nothing-here", json={})
    assert response.status_code == 404
    assert response.json()["type"] == "error" and response.json()["error"]["type"] == "not_found_error"
