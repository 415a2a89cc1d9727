"""Locust users for every fleetgate dialect.

Environment:
  FLEETGATE_URL        target base URL (default http://127.0.0.1:8080; `--host` overrides)
  FLEETGATE_API_KEY    API key (omit when the router runs with auth off)
  FLEETGATE_MODEL      model name (default: the first one /v1/models lists)
  FLEETGATE_MAX_TOKENS completion tokens per request (default 32)

Each streamed request also records two custom metrics: request type ``TTFT`` (time
to first token) and ``ITL`` (every inter-token gap), under the scenario's name.
Run headless with a CSV and HTML report (user class names pick scenarios; none = all):

  locust -f loadtest/locustfile.py --headless -u 16 -r 4 -t 60s \
      --csv loadtest/results/run --html loadtest/results/run.html ChatUser MessagesUser
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
from locust import FastHttpUser, between, task
from locust.contrib.fasthttp import FastResponse
from locust.env import Environment

from fleetgate.loadtest import payloads
from fleetgate.loadtest.streaming import StreamResult, read_stream

MAX_TOKENS = int(os.environ.get("FLEETGATE_MAX_TOKENS", "32"))
_model_cache: dict[str, str] = {}


def _record_latency(environment: Environment, name: str, result: StreamResult) -> None:
    fire: Callable[..., None] = environment.events.request.fire
    if result.ttft is not None:
        fire(request_type="TTFT", name=name, response_time=result.ttft * 1000, response_length=0, exception=None)
    for gap in result.inter_token_latencies:
        fire(request_type="ITL", name=name, response_time=gap * 1000, response_length=0, exception=None)


class FleetgateUser(FastHttpUser):
    """Base: target, key and model from the environment; helpers for JSON and SSE calls."""

    abstract = True
    host = os.environ.get("FLEETGATE_URL", "http://127.0.0.1:8080")
    wait_time = between(0.05, 0.2)

    def on_start(self) -> None:
        key = os.environ.get("FLEETGATE_API_KEY")
        self.headers = {"Authorization": f"Bearer {key}", "x-api-key": key} if key else {}
        self.model = os.environ.get("FLEETGATE_MODEL") or self._first_model()

    def _first_model(self) -> str:
        if "model" not in _model_cache:
            with self.client.get("/v1/models", headers=self.headers, name="/v1/models", catch_response=True) as resp:
                data = resp.json().get("data") or []
                if not data:
                    resp.failure("no models served")
                    raise RuntimeError("the target serves no models")
                _model_cache["model"] = data[0]["id"]
        return _model_cache["model"]

    def post_json(self, path: str, body: dict[str, Any], name: str) -> dict[str, Any] | None:
        # data: bytes, which locust's annotation leaves out (its docstring: "String/bytes to send").
        with self.client.post(path, data=orjson.dumps(body),  # type: ignore[arg-type]
                              headers={**self.headers, "content-type": "application/json"},
                              name=name, catch_response=True) as resp:
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}: {resp.text[:200]}")
                return None
            answer: dict[str, Any] = resp.json()
            return answer

    def post_stream(self, path: str, body: dict[str, Any], dialect: str, name: str) -> StreamResult | None:
        started = time.perf_counter()
        with self.client.post(path, data=orjson.dumps(body),  # type: ignore[arg-type]  # bytes, as in post_json
                              headers={**self.headers, "content-type": "application/json"},
                              name=name, stream=True, catch_response=True) as resp:
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}")
                return None
            result = read_stream(dialect, _lines(resp), started_at=started)
            if result.error or not result.finished:
                resp.failure(result.error or "stream ended without its terminal event")
                return None
            resp.request_meta["response_time"] = (time.perf_counter() - started) * 1000
        _record_latency(self.environment, name, result)
        return result


def _lines(resp: FastResponse) -> Iterator[str]:
    buffer = ""
    for chunk in resp.iter_content(chunk_size=4096):
        buffer += chunk.decode() if isinstance(chunk, bytes) else chunk
        while "\n" in buffer:
            line, buffer = buffer.split("\n", 1)
            yield line
    if buffer:
        yield buffer


class ChatUser(FleetgateUser):
    @task(3)
    def chat_stream(self) -> None:
        self.post_stream("/v1/chat/completions", payloads.chat(self.model, MAX_TOKENS, True), "chat", "chat stream")

    @task(1)
    def chat(self) -> None:
        self.post_json("/v1/chat/completions", payloads.chat(self.model, MAX_TOKENS, False), "chat")


class MessagesUser(FleetgateUser):
    @task(3)
    def messages_stream(self) -> None:
        self.post_stream("/v1/messages", payloads.messages(self.model, MAX_TOKENS, True), "messages", "messages stream")

    @task(1)
    def messages(self) -> None:
        self.post_json("/v1/messages", payloads.messages(self.model, MAX_TOKENS, False), "messages")


class ResponsesUser(FleetgateUser):
    @task(3)
    def responses_stream(self) -> None:
        self.post_stream(
            "/v1/responses", payloads.responses(self.model, MAX_TOKENS, True), "responses", "responses stream"
        )

    @task(1)
    def responses(self) -> None:
        self.post_json("/v1/responses", payloads.responses(self.model, MAX_TOKENS, False), "responses")


class ToolCallingUser(FleetgateUser):
    """A forced tool call, then the tool's result sent back for the final answer."""

    @task
    def tool_round_trip(self) -> None:
        messages: list[dict[str, Any]] = [{"role": "user", "content": "What is the weather in Paris?"}]
        first = self.post_json(
            "/v1/chat/completions", payloads.chat_tools(self.model, messages, "required", MAX_TOKENS), "tools call"
        )
        if not first:
            return
        message = first["choices"][0]["message"]
        calls = message.get("tool_calls") or []
        if not calls:
            return
        messages.append({"role": "assistant", "content": message.get("content"), "tool_calls": calls})
        for call in calls:
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": '{"temperature_c": 21}'})
        self.post_json("/v1/chat/completions", payloads.chat_tools(self.model, messages, "none", MAX_TOKENS),
                       "tools answer")


class MultiTurnResponsesUser(FleetgateUser):
    """Three turns chained by previous_response_id (continuations routed by affinity)."""

    @task
    def conversation(self) -> None:
        previous = None
        for turn in range(3):
            body = payloads.responses(self.model, MAX_TOKENS, False, previous_response_id=previous,
                                      text=None if turn == 0 else "Tell me more.")
            response = self.post_json("/v1/responses", body, f"responses turn {turn + 1}")
            if not response:
                return
            previous = response["id"]
