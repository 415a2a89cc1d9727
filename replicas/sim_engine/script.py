"""The simulator's scripted mode: a prompt convention that tells the sim what to answer, turn by turn.

Tests drive real clients (coding agents, SDKs) through tool loops with it, so a
tool call is a decision of the test, not a dice roll. A user message may hold
directives, in order:

    [[sim:call NAME {"json": "arguments"}]]   call tool NAME with exactly these arguments
    [[sim:say TEXT]]                           answer TEXT (``{tool_result}`` is replaced by
                                               the text of the latest tool result)

The newest user message that holds directives is the script; the number of
assistant turns after it picks the step (the first answer runs step 1, the answer
after the tool result step 2, ...). A ``call`` whose tool the request does not
offer, or a script already played to its end, leaves the sim to its usual
answer; a request with a JSON ``response_format`` is never scripted (its answer
must validate). Pure functions of the canonical request.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from fleetgate.v1 import replica_pb2 as pb

_DIRECTIVE = re.compile(r"\[\[sim:(call|say)\s+(.*?)\]\]", re.DOTALL)
_CALL = re.compile(r"(\S+)\s*(.*)", re.DOTALL)
TOOL_RESULT = "{tool_result}"


@dataclass(frozen=True)
class ScriptedCall:
    name: str
    arguments: str  # JSON text, as given


@dataclass(frozen=True)
class ScriptedText:
    text: str


ScriptedStep = ScriptedCall | ScriptedText


def scripted_step(request: pb.GenerateRequest) -> ScriptedStep | None:
    """What the script in ``request`` says for this turn, or None when nothing scripted applies."""
    if request.HasField("raw_prompt") or request.response_format.kind != pb.ResponseFormat.KIND_TEXT:
        return None
    for index in range(len(request.messages) - 1, -1, -1):
        message = request.messages[index]
        if message.role != pb.ROLE_USER:
            continue
        steps = _directives(_text(message))
        if not steps:
            continue
        turn = sum(1 for later in request.messages[index + 1:] if later.role == pb.ROLE_ASSISTANT)
        if turn >= len(steps):
            return None
        step = steps[turn]
        if isinstance(step, ScriptedCall) and step.name not in {tool.name for tool in request.tools}:
            return None
        if isinstance(step, ScriptedText) and TOOL_RESULT in step.text:
            return ScriptedText(step.text.replace(TOOL_RESULT, _latest_tool_result(request)))
        return step
    return None


def _directives(text: str) -> list[ScriptedStep]:
    steps: list[ScriptedStep] = []
    for kind, body in _DIRECTIVE.findall(text):
        if kind == "say":
            steps.append(ScriptedText(body.strip()))
            continue
        match = _CALL.fullmatch(body.strip())
        if match is None:
            continue
        name, arguments = match.group(1), match.group(2).strip() or "{}"
        try:
            json.loads(arguments)
        except ValueError:
            continue  # not a directive the sim can play: ignored like any other text
        steps.append(ScriptedCall(name, arguments))
    return steps


def _text(message: pb.Message) -> str:
    return "\n".join(part.text for part in message.content if part.HasField("text"))


def _latest_tool_result(request: pb.GenerateRequest) -> str:
    for message in reversed(request.messages):
        if message.role == pb.ROLE_TOOL:
            return _text(message).strip()
    return ""
