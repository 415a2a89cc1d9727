"""Sealed content in Responses: encrypted reasoning for store: false clients, opened by any router of the deployment.

Pure tests of the seal (router/sealing.py), then the API with the official SDK: a
reasoning model's item comes back with ``encrypted_content`` when asked, sent back it
reaches the model again, and content that is changed or sealed by another deployment
is a 400 naming the item.
"""

from __future__ import annotations

import openai
import pytest

from fleetgate.router.sealing import COMPACTION, PREFIX, REASONING, SealBroken, Sealer, key_from_secret
from router_process import RouterProcess, router_cluster, router_factory  # noqa: F401

KEY = key_from_secret("deployment secret")
INCLUDE = ["reasoning.encrypted_content"]


def test_a_seal_opens_only_for_its_deployment_key_and_purpose() -> None:
    token = Sealer(KEY, "key-a").seal(REASONING, "I should add the numbers.")
    assert token.startswith(PREFIX) and "numbers" not in token
    assert Sealer(KEY, "key-a").open(REASONING, token) == "I should add the numbers."
    assert key_from_secret("deployment secret") == KEY
    for opener, purpose in ((Sealer(KEY, "key-b"), REASONING), (Sealer(KEY, "key-a"), COMPACTION),
                            (Sealer(key_from_secret("another deployment"), "key-a"), REASONING)):
        with pytest.raises(SealBroken):
            opener.open(purpose, token)
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    for broken in (tampered, "fg1.", "fg1.!!!", "plain text", token[len(PREFIX):]):
        with pytest.raises(SealBroken):
            Sealer(KEY, "key-a").open(REASONING, broken)


def two_routers(router_factory, env: dict[str, str] | None = None) -> tuple[openai.OpenAI, openai.OpenAI]:  # noqa: F811
    routers = [router_factory(env=env), router_factory(env=env)]
    for router in routers:
        router.wait_for_replicas("rt-reasoning", 1)
    return routers[0].openai(), routers[1].openai()


def reasoning_turn(client: openai.OpenAI) -> tuple[list[dict], dict]:
    """A store: false turn of the reasoning model with encrypted reasoning; (its input, its reasoning item)."""
    asked = [{"role": "user", "content": "Think, then answer."}]
    response = client.responses.create(model="rt-reasoning", input=asked, store=False, include=INCLUDE)
    reasoning = next(item for item in response.output if item.type == "reasoning")
    assert reasoning.encrypted_content and reasoning.encrypted_content.startswith(PREFIX)
    return asked, reasoning.model_dump(exclude_none=True)


def follow_up(asked: list[dict], reasoning: dict) -> list[dict]:
    sealed_only = {k: v for k, v in reasoning.items() if k not in ("content", "summary")}
    return [*asked, sealed_only, {"role": "assistant", "content": "ok"}, {"role": "user", "content": "Again."}]


def test_encrypted_reasoning_is_replayed_by_another_router_of_the_deployment(
    router_cluster: RouterProcess, router_factory  # noqa: F811
) -> None:
    first, second = two_routers(router_factory)  # no secret configured: the key kept in Redis
    asked, reasoning = reasoning_turn(first)
    replayed = second.responses.create(model="rt-reasoning", input=follow_up(asked, reasoning), store=False)
    without = second.responses.create(model="rt-reasoning", store=False,
                                      input=[*asked, {"role": "assistant", "content": "ok"},
                                             {"role": "user", "content": "Again."}])
    # The opened reasoning is part of the prompt: its words count.
    reasoning_words = len(reasoning["content"][0]["text"].split())
    assert replayed.usage.input_tokens == without.usage.input_tokens + reasoning_words


def test_changed_or_foreign_encrypted_content_is_a_400(router_cluster: RouterProcess, router_factory) -> None:  # noqa: F811
    ours, _ = two_routers(router_factory, env={"FLEETGATE_ROUTER__SEALING_SECRET": "ours"})
    theirs, _ = two_routers(router_factory, env={"FLEETGATE_ROUTER__SEALING_SECRET": "theirs"})
    asked, reasoning = reasoning_turn(ours)
    changed = {**reasoning, "encrypted_content": reasoning["encrypted_content"][:-3] + "xyz"}
    for client, item in ((ours, changed), (theirs, reasoning)):
        with pytest.raises(openai.BadRequestError) as refused:
            client.responses.create(model="rt-reasoning", input=follow_up(asked, item), store=False)
        error = refused.value.body
        assert error["param"] == "input[1].encrypted_content"
        assert error["type"] == "invalid_request_error"
        assert "could not be opened" in error["message"]
    # Without the include, no reasoning is sealed.
    plain = ours.responses.create(model="rt-reasoning", input=asked, store=False)
    assert all(getattr(item, "encrypted_content", None) is None for item in plain.output)
