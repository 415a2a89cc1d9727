"""The simulator's scripted mode: ``[[sim:call ...]]`` / ``[[sim:say ...]]`` in a prompt, played turn by turn."""

from __future__ import annotations

import json
import random

from fleetgate.core.config import ModelConfig
from fleetgate.replicas.sim_engine.plan import plan_completion
from fleetgate.replicas.sim_engine.script import ScriptedCall, ScriptedText, scripted_step
from fleetgate.v1 import replica_pb2 as pb

SCRIPT = ('Run it. [[sim:call Bash {"command": "echo fleetgate-$((6*7))"}]] '
          "[[sim:say The command printed {tool_result}.]]")
BASH = pb.Tool(name="Bash", description="run a command", parameters_json='{"type": "object"}')
MODEL = ModelConfig(name="sim", engine="sim")


def user(text: str) -> pb.Message:
    return pb.Message(role=pb.ROLE_USER, content=[pb.ContentPart(text=text)])


def tool_turn(output: str) -> list[pb.Message]:
    call = pb.ToolCall(id="call_1", name="Bash", arguments='{"command": "echo"}')
    return [pb.Message(role=pb.ROLE_ASSISTANT, tool_calls=[call]),
            pb.Message(role=pb.ROLE_TOOL, tool_call_id="call_1", content=[pb.ContentPart(text=output)])]


def request(*messages: pb.Message, tools: tuple[pb.Tool, ...] = (BASH,)) -> pb.GenerateRequest:
    return pb.GenerateRequest(model="sim", messages=list(messages), tools=list(tools))


def test_first_turn_calls_the_scripted_tool_with_the_scripted_arguments() -> None:
    step = scripted_step(request(user(SCRIPT)))
    assert step == ScriptedCall("Bash", '{"command": "echo fleetgate-$((6*7))"}')
    plan = plan_completion(request(user(SCRIPT)), MODEL, random.Random(0))
    (call,) = plan.tool_calls
    assert (call.name, json.loads("".join(call.argument_tokens))) == ("Bash", {"command": "echo fleetgate-$((6*7))"})
    assert plan.text == []


def test_the_turn_after_the_tool_result_answers_from_it() -> None:
    follow_up = request(user(SCRIPT), *tool_turn("fleetgate-42\n"))
    assert scripted_step(follow_up) == ScriptedText("The command printed fleetgate-42.")
    assert "".join(plan_completion(follow_up, MODEL, random.Random(0)).text) == "The command printed fleetgate-42."


def test_a_script_played_to_its_end_leaves_the_usual_answer() -> None:
    done = request(
        user(SCRIPT), *tool_turn("x"), pb.Message(role=pb.ROLE_ASSISTANT, content=[pb.ContentPart(text="ok")])
    )
    assert scripted_step(done) is None


def test_the_newest_user_message_with_directives_is_the_script() -> None:
    later = request(user(SCRIPT), *tool_turn("x"), pb.Message(role=pb.ROLE_ASSISTANT), user("[[sim:say pong]]"))
    assert scripted_step(later) == ScriptedText("pong")
    assert scripted_step(request(user("[[sim:say pong]]"), user("no directive here"))) == ScriptedText("pong")


def test_a_call_of_a_tool_not_offered_or_a_json_format_is_not_scripted() -> None:
    assert scripted_step(request(user(SCRIPT), tools=())) is None
    as_json = request(user("[[sim:say pong]]"))
    as_json.response_format.kind = pb.ResponseFormat.KIND_JSON_OBJECT
    assert scripted_step(as_json) is None


def test_malformed_directives_are_ordinary_text() -> None:
    assert scripted_step(request(user("[[sim:call Bash {not json}]]"))) is None
    assert scripted_step(request(user("[[sim:shout hi]]"))) is None
    assert scripted_step(request(user("plain prompt"))) is None
