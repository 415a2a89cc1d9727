"""Claude Code and Codex CLI, the real pinned CLIs, run clean through a router to the simulator.

The simulator's scripted turns (``[[sim:call ...]]`` / ``[[sim:say ...]]``, see
replicas/sim_engine/script.py) make the model side deterministic: the agent really
executes the tool the model called, and the model's next turn answers from the
tool's output. Each test asserts the exit code, the final answer and that the
agent reported no protocol error.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agent_clients import AgentRun, run_claude_code, run_codex
from router_process import RouterProcess, router_cluster, router_factory  # noqa: F401

# The agents send their whole prompt (Claude Code ~85 KB on its first turn): a router with
# Anthropic's 32 MB body limit, in front of the session's sim replicas.
AGENT_ROUTER_ENV = {"FLEETGATE_ROUTER__MAX_BODY_BYTES": str(32 * 1024 * 1024)}
# A shell command whose output only a shell that really ran it prints.
COMMAND = "echo fleetgate-$((6*7))"
EXPECTED_OUTPUT = "fleetgate-42"


@pytest.fixture()
def agent_router(router_cluster: RouterProcess, router_factory) -> RouterProcess:  # noqa: F811
    router = router_factory(env=AGENT_ROUTER_ENV)
    for model in ("rt-sim", "rt-reasoning"):
        router.wait_for_replicas(model, 1)
    return router


def assert_clean(run: AgentRun) -> None:
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.protocol_errors() == []


def tool_script(tool: str, argument: str) -> str:
    return (f'[[sim:call {tool} {{"{argument}": "{COMMAND}"}}]] '
            "[[sim:say The command printed: {tool_result}]] Run the command, then tell me what it printed.")


def test_claude_code_answers_a_one_shot_prompt(agent_router: RouterProcess, tmp_path: Path) -> None:
    run = run_claude_code(agent_router.base_url, "[[sim:say pong]] Reply with one word: pong", "rt-sim", tmp_path)
    assert_clean(run)
    assert run.answer == "pong"


def test_claude_code_runs_the_tool_the_model_called_and_answers_from_its_output(
    agent_router: RouterProcess, tmp_path: Path
) -> None:
    run = run_claude_code(agent_router.base_url, tool_script("Bash", "command"), "rt-sim", tmp_path,
                          allowed_tools="Bash")
    assert_clean(run)
    assert run.answer.startswith("The command printed:")
    assert EXPECTED_OUTPUT in run.answer


def test_codex_answers_a_one_shot_prompt(agent_router: RouterProcess, tmp_path: Path) -> None:
    run = run_codex(agent_router.base_url, "[[sim:say pong]] Reply with one word: pong", "rt-sim", tmp_path)
    assert_clean(run)
    assert run.answer == "pong"


def test_codex_runs_the_tool_the_model_called_and_answers_from_its_output(
    agent_router: RouterProcess, tmp_path: Path
) -> None:
    run = run_codex(agent_router.base_url, tool_script("exec_command", "cmd"), "rt-sim", tmp_path)
    assert_clean(run)
    assert run.answer.startswith("The command printed:")
    assert EXPECTED_OUTPUT in run.answer


def test_codex_replays_its_encrypted_reasoning_across_tool_turns(agent_router: RouterProcess, tmp_path: Path) -> None:
    """A reasoning model, store: false: every turn sends the earlier reasoning items back encrypted."""
    script = (f'[[sim:call exec_command {{"cmd": "{COMMAND}"}}]] [[sim:call exec_command {{"cmd": "echo second"}}]] '
              "[[sim:say Both ran; the last printed: {tool_result}]]")
    run = run_codex(agent_router.base_url, script, "rt-reasoning", tmp_path)
    assert_clean(run)
    assert run.answer.startswith("Both ran; the last printed:")
    assert "second" in run.answer
