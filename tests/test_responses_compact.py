"""``POST /v1/responses/compact``: the model summarises a conversation into a sealed item a later turn
continues from."""

from __future__ import annotations

import httpx
import openai
import pytest

from fleetgate.router.sealing import PREFIX
from router_process import RouterProcess, router_cluster, sim_router  # noqa: F401

SUMMARY = "The user wants a haiku about Redis; none written yet."
CONVERSATION = [
    {"role": "user", "content": "I need a poem."},
    {"role": "assistant", "content": "What about?"},
    {"role": "user", "content": f"A haiku about Redis. [[sim:say {SUMMARY}]]"},
]


def compact(router: RouterProcess, body: dict) -> httpx.Response:
    return httpx.post(f"{router.base_url}/v1/responses/compact", json=body, timeout=30)


def test_a_compaction_holds_the_user_messages_and_the_models_summary_sealed(sim_router: RouterProcess) -> None:
    answer = compact(sim_router, {"model": "rt-sim", "input": CONVERSATION})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["object"] == "response.compaction" and body["id"].startswith("cmpresp_")
    *users, compaction = body["output"]
    assert [item["content"][0]["text"] for item in users] == ["I need a poem.", CONVERSATION[2]["content"]]
    assert all(item["type"] == "message" and item["role"] == "user" for item in users)
    assert compaction["type"] == "compaction" and compaction["id"].startswith("cmp_")
    assert compaction["encrypted_content"].startswith(PREFIX) and "Redis" not in compaction["encrypted_content"]
    usage = body["usage"]
    # A real generation: the summary request's prompt and the summary's words.
    assert usage["output_tokens"] == len(SUMMARY.split())
    assert usage["input_tokens"] > 0 and usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


def test_a_later_turn_continues_from_the_compaction_with_a_shorter_prompt(sim_router: RouterProcess) -> None:
    compaction = compact(sim_router, {"model": "rt-sim", "input": CONVERSATION}).json()["output"][-1]
    client = sim_router.openai()
    follow_up = [{"role": "user", "content": "Now write it."}]
    full = client.responses.create(model="rt-echo", input=[*CONVERSATION, *follow_up], store=False)
    compacted = client.responses.create(model="rt-echo", input=[compaction, *follow_up], store=False)
    assert compacted.output_text == "Now write it."
    # The summary (and its preamble) replaces the three turns.
    assert compacted.usage.input_tokens < full.usage.input_tokens
    assert compacted.usage.input_tokens >= len(SUMMARY.split()) + len(follow_up[0]["content"].split())


def test_compact_errors(sim_router: RouterProcess) -> None:
    missing_model = compact(sim_router, {"input": CONVERSATION})
    assert missing_model.status_code == 400
    assert missing_model.json()["error"]["param"] == "model"
    streamed = compact(sim_router, {"model": "rt-sim", "input": CONVERSATION, "stream": True})
    assert streamed.status_code == 400
    compaction = compact(sim_router, {"model": "rt-sim", "input": CONVERSATION}).json()["output"][-1]
    tampered = {**compaction, "encrypted_content": compaction["encrypted_content"][:-2] + "zz"}
    with pytest.raises(openai.BadRequestError) as refused:
        sim_router.openai().responses.create(model="rt-sim", input=[tampered], store=False)
    assert refused.value.body["param"] == "input[0].encrypted_content"
