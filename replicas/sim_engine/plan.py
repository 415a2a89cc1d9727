"""What the sim engine answers, decided up front: pure functions of the request and ``SimConfig``.

Tokens are words (``tokens``): joining a completion's tokens gives back its
text exactly; the prompt is counted over a plain rendering of the request.

The plan for one request is: reasoning tokens (when the model reasons and the
request allows it), then either one tool call (when tools are offered and the
tool choice demands one, or allows one with ``tool_call_probability``) or text:
JSON for ``response_format`` json_schema / json_object, otherwise lorem ipsum
(``output_tokens`` words, then a natural stop) or the last user message echoed.
A prompt that scripts the turn (``script.py``: ``[[sim:call ...]]``,
``[[sim:say ...]]``) gets exactly the scripted tool call or text instead.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field

from fleetgate.core.config import ModelConfig, SimConfig
from fleetgate.core.events import ErrorCode
from fleetgate.core.tool_call_ids import new_tool_call_id
from fleetgate.replicas.completion_budget import completion_budget, requested_max_tokens
from fleetgate.replicas.refusal import Refusal, parse_json_schema
from fleetgate.replicas.sim_engine.schema_values import UnsatisfiableSchema, example_value
from fleetgate.replicas.sim_engine.script import ScriptedCall, scripted_step
from fleetgate.replicas.sim_engine.tokens import count_prompt_tokens, split_tokens
from fleetgate.v1 import replica_pb2 as pb

_LOREM = (
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et "
    "dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip "
    "ex ea commodo consequat."
).split()
_THOUGHTS = "Let me think about what is being asked and how best to answer it.".split()
_EFFORT_SCALE = {"low": 0.5, "medium": 1.0, "high": 2.0}
Mode = pb.ToolChoice.Mode
Kind = pb.ResponseFormat.Kind


@dataclass
class PlannedToolCall:
    call_id: str
    name: str
    argument_tokens: list[str]


@dataclass
class Plan:
    """One request's completion, before timing, budget and stop sequences are applied."""

    prompt_tokens: int
    max_tokens: int
    reasoning: list[str] = field(default_factory=list)
    tool_calls: list[PlannedToolCall] = field(default_factory=list)
    text: list[str] = field(default_factory=list)

    @property
    def completion_tokens(self) -> int:
        """Tokens the plan generates, within ``max_tokens`` (a stop sequence may end it earlier)."""
        planned = len(self.reasoning) + len(self.text)
        planned += sum(1 + len(call.argument_tokens) for call in self.tool_calls)
        return min(planned, self.max_tokens)


def request_rng(request: pb.GenerateRequest, sim: SimConfig) -> random.Random:
    """Randomness for one request: reproducible with a sampling seed, else per request id."""
    per_request = request.sampling.seed if request.sampling.HasField("seed") else request.request_id
    return random.Random(f"{sim.seed}:{per_request}")


def check_request(request: pb.GenerateRequest, model: ModelConfig) -> None:
    """Raise ``Refusal`` for a request the sim cannot serve (model, images, tool choice)."""
    if request.model and request.model != model.name:
        raise Refusal(ErrorCode.ERROR_CODE_UNKNOWN_MODEL, f"this replica serves {model.name!r}, not {request.model!r}")
    if not (model.vision or model.sim.vision) and any(
        part.HasField("image_url") for message in request.messages for part in message.content
    ):
        raise Refusal(ErrorCode.ERROR_CODE_UNSUPPORTED, f"model {model.name!r} does not accept images")
    choice = request.tool_choice
    if choice.mode in (Mode.MODE_REQUIRED, Mode.MODE_NAMED) and not request.tools:
        raise Refusal(ErrorCode.ERROR_CODE_INVALID_REQUEST, "tool_choice requires a tool call but no tools were given")
    if choice.mode == Mode.MODE_NAMED and choice.name not in {tool.name for tool in request.tools}:
        raise Refusal(
            ErrorCode.ERROR_CODE_INVALID_REQUEST, f"tool_choice names {choice.name!r}, which is not among the tools"
        )


def plan_completion(
    request: pb.GenerateRequest, model: ModelConfig, rng: random.Random, prompt_tokens: int | None = None
) -> Plan:
    """Everything the sim will say for ``request`` (raises ``Refusal``); ``prompt_tokens`` when already counted."""
    check_request(request, model)
    if prompt_tokens is None:
        prompt_tokens = count_prompt_tokens(request)
    max_tokens = completion_budget(
        prompt_tokens, model.sim.max_context_length, requested_max_tokens(request), model.clamp_max_tokens
    )
    plan = Plan(prompt_tokens=prompt_tokens, max_tokens=max_tokens)
    sim = model.sim
    if sim.reasoning and not (request.HasField("enable_reasoning") and not request.enable_reasoning):
        count = max(1, round(sim.reasoning_tokens * _EFFORT_SCALE.get(request.reasoning_effort, 1.0)))
        plan.reasoning = _cycled(_THOUGHTS, count)
    scripted = scripted_step(request)
    if isinstance(scripted, ScriptedCall):
        plan.tool_calls = [PlannedToolCall(new_tool_call_id(rng=rng), scripted.name, split_tokens(scripted.arguments))]
        return plan
    if scripted is not None:
        plan.text = split_tokens(scripted.text)
        return plan
    tool = _tool_to_call(request, sim, rng)
    if tool is not None:
        plan.tool_calls = [PlannedToolCall(new_tool_call_id(rng=rng), tool.name, _argument_tokens(tool))]
    else:
        plan.text = _text_tokens(request, sim)
    return plan


def _tool_to_call(request: pb.GenerateRequest, sim: SimConfig, rng: random.Random) -> pb.Tool | None:
    choice = request.tool_choice
    if not request.tools or choice.mode == Mode.MODE_NONE:
        return None
    if choice.mode == Mode.MODE_NAMED:
        return next(tool for tool in request.tools if tool.name == choice.name)
    if choice.mode == Mode.MODE_AUTO and rng.random() >= sim.tool_call_probability:
        return None
    return rng.choice(list(request.tools))


def _argument_tokens(tool: pb.Tool) -> list[str]:
    schema = parse_json_schema(tool.parameters_json or '{"type": "object"}', f"parameters of tool {tool.name!r}")
    try:
        arguments = example_value(schema)
    except UnsatisfiableSchema as exc:
        raise Refusal(ErrorCode.ERROR_CODE_INVALID_REQUEST, f"tool {tool.name!r}: {exc}") from exc
    return split_tokens(json.dumps(arguments))


def _text_tokens(request: pb.GenerateRequest, sim: SimConfig) -> list[str]:
    response_format = request.response_format
    if response_format.kind == Kind.KIND_JSON_SCHEMA:
        schema = parse_json_schema(response_format.schema_json or "{}", "response_format schema")
        try:
            return split_tokens(json.dumps(example_value(schema)))
        except UnsatisfiableSchema as exc:
            raise Refusal(ErrorCode.ERROR_CODE_INVALID_REQUEST, f"response_format schema: {exc}") from exc
    if response_format.kind == Kind.KIND_JSON_OBJECT:
        return split_tokens(json.dumps({"answer": "".join(_cycled(_LOREM, sim.output_tokens)).strip()}))
    if sim.text == "echo":
        return split_tokens(_last_user_text(request).strip())
    return _cycled(_LOREM, sim.output_tokens)


def _last_user_text(request: pb.GenerateRequest) -> str:
    if request.HasField("raw_prompt"):
        return request.raw_prompt
    for message in reversed(request.messages):
        if message.role == pb.ROLE_USER:
            return " ".join(part.text for part in message.content if part.HasField("text"))
    return ""


def _cycled(words: list[str], count: int) -> list[str]:
    """``count`` tokens cycling through ``words``: the first bare, the rest with a leading space."""
    return [(" " if index else "") + words[index % len(words)] for index in range(count)]
