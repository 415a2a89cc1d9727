"""Claude Code's billing header block (router/dialects/messages/billing_header.py) in the Messages translation:
normalised by default so two turns share their prompt from the first token, dropped or kept by
``router.claude_code_billing_header``, the rest of the system prompt and the conversation intact."""

from __future__ import annotations

from typing import Any

import pytest

from fleetgate.core.config import RouterConfig
from fleetgate.router.dialects.messages import protocol as wire
from fleetgate.router.dialects.messages.billing_header import normalised_header
from fleetgate.router.dialects.messages.dialect import COUNT_TOKENS, MESSAGES
from fleetgate.router.pipeline.context import RequestContext
from fleetgate.v1 import replica_pb2 as pb

AGENT_SDK = "You are a Claude agent, built on Anthropic's Claude Agent SDK."
INSTRUCTIONS = "\nYou are an interactive agent that helps users with software engineering tasks.\n"
EPHEMERAL = {"type": "ephemeral"}


def header(build: str, entrypoint: str = "sdk-cli") -> str:
    return f"x-anthropic-billing-header: cc_version=2.1.197.{build}; cc_entrypoint={entrypoint};"


def claude_code_body(build: str, **extra: Any) -> dict[str, Any]:
    """Shaped like Claude Code 2.1.197's requests: the header block, then the cached system blocks."""
    return {
        "model": "sim", "max_tokens": 32000,
        "system": [{"type": "text", "text": header(build)},
                   {"type": "text", "text": AGENT_SDK, "cache_control": EPHEMERAL},
                   {"type": "text", "text": INSTRUCTIONS, "cache_control": EPHEMERAL}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Reply with one word: pong",
                                                   "cache_control": EPHEMERAL}]},
                     {"role": "system", "content": "The user's working directory is /work."}],
        **extra,
    }


def canonical(body: dict[str, Any], mode: str | None = None, *, count_tokens: bool = False) -> pb.GenerateRequest:
    """The canonical request the dialect makes of ``body`` with ``router.claude_code_billing_header = mode``."""
    dialect = COUNT_TOKENS if count_tokens else MESSAGES
    if count_tokens:
        body = {k: v for k, v in body.items() if k != "max_tokens"}
    settings = RouterConfig() if mode is None else RouterConfig(claude_code_billing_header=mode)
    ctx = RequestContext(dialect=dialect, request_id="req-1")
    return dialect.to_canonical(dialect.parse(body), ctx, settings)


def system_texts(request: pb.GenerateRequest) -> list[str]:
    first = request.messages[0]
    assert first.role == pb.ROLE_SYSTEM
    return [part.text for part in first.content]


def test_normalise_is_the_default_and_drops_only_the_build_suffix() -> None:
    assert RouterConfig().claude_code_billing_header == "normalise"
    assert system_texts(canonical(claude_code_body("0df"))) == [
        "x-anthropic-billing-header: cc_version=2.1.197; cc_entrypoint=sdk-cli;", AGENT_SDK, INSTRUCTIONS]
    normalised = "x-anthropic-billing-header: cc_version=2.1.197; cc_entrypoint=cli;"
    assert normalised_header(header("84c", "cli")) == normalised


@pytest.mark.parametrize("count_tokens", [False, True])
def test_two_requests_with_different_suffixes_are_one_canonical_prompt_under_normalise(count_tokens: bool) -> None:
    first = canonical(claude_code_body("0df"), "normalise", count_tokens=count_tokens)
    second = canonical(claude_code_body("84c"), "normalise", count_tokens=count_tokens)
    assert first.SerializeToString(deterministic=True) == second.SerializeToString(deterministic=True)
    # Kept as sent, they differ in their very first block.
    kept = [canonical(claude_code_body(build), "keep", count_tokens=count_tokens) for build in ("0df", "84c")]
    assert system_texts(kept[0])[0] != system_texts(kept[1])[0]


def test_drop_removes_only_the_header_block() -> None:
    dropped = canonical(claude_code_body("0df"), "drop")
    kept = canonical(claude_code_body("0df"), "keep")
    assert system_texts(dropped) == [AGENT_SDK, INSTRUCTIONS]
    assert list(dropped.messages[1:]) == list(kept.messages[1:])
    # A system prompt that is only the header leaves no system message.
    alone = claude_code_body("0df")
    alone["system"] = alone["system"][:1]
    assert [m.role for m in canonical(alone, "drop").messages] == [pb.ROLE_USER, pb.ROLE_SYSTEM]


def test_keep_passes_the_block_through_as_sent() -> None:
    assert system_texts(canonical(claude_code_body("d03"), "keep")) == [header("d03"), AGENT_SDK, INSTRUCTIONS]


@pytest.mark.parametrize("mode", ["normalise", "drop", "keep"])
def test_the_rest_of_the_request_is_intact(mode: str) -> None:
    """Everything but the header block is what the request without it translates to."""
    body = claude_code_body("0df", tools=[{"name": "Read", "description": "read a file",
                                           "input_schema": {"type": "object", "properties": {}}}])
    without = {**body, "system": body["system"][1:]}
    got, reference = canonical(body, mode), canonical(without, "keep")
    assert system_texts(got)[-2:] == system_texts(reference)
    assert list(got.messages[1:]) == list(reference.messages[1:])
    assert list(got.tools) == list(reference.tools)
    assert got.sampling == reference.sampling


@pytest.mark.parametrize("mode", ["normalise", "drop"])
def test_only_a_leading_header_block_is_touched(mode: str) -> None:
    later = claude_code_body("0df")
    later["system"] = [later["system"][1], later["system"][0]]
    assert system_texts(canonical(later, mode)) == [AGENT_SDK, header("0df")]
    plain = {**claude_code_body("0df"), "system": "x-anthropic-billing-header: cc_version=2.1.197.0df; a string"}
    assert system_texts(canonical(plain, mode)) == [plain["system"]]
    # Mid-conversation system turns are never touched.
    mid = claude_code_body("0df")
    mid["messages"][1]["content"] = header("abc")
    assert canonical(mid, mode).messages[-1].content[0].text == header("abc")


def test_the_parsed_request_keeps_the_block_as_sent() -> None:
    """The translation normalises a copy: the wire request itself is left as the client sent it."""
    parsed = wire.MessagesRequest.model_validate(claude_code_body("0df"))
    MESSAGES.to_canonical(parsed, RequestContext(dialect=MESSAGES, request_id="r"), RouterConfig())
    assert isinstance(parsed.system, list) and parsed.system[0].text == header("0df")
