"""The Responses API against real vLLM on CPU (the bundled SmolLM2-135M), through a router process.

A short check that what the sim tests pin holds on a real model: a greedy
answer, the streamed event sequence, and a continuation by
``previous_response_id`` served by the same replica with the rebuilt
conversation.
"""

from __future__ import annotations

from itertools import groupby

from conftest import VLLM_MODEL
from router_process import RouterProcess, router_cluster, sim_router  # noqa: F401

REPLICA_HEADER = "x-fleetgate-replica"
GREEDY = {"temperature": 0, "max_output_tokens": 24}


def test_vllm_conversation_and_stream(vllm_replica, sim_router: RouterProcess):
    sim_router.wait_for_replicas(VLLM_MODEL, 1, timeout=60)
    client = sim_router.openai()
    raw = client.responses.with_raw_response.create(
        model=VLLM_MODEL, instructions="Answer in one sentence.", input="What is the capital of France?", **GREEDY)
    first = raw.parse()
    assert raw.headers[REPLICA_HEADER] == vllm_replica.replica_id
    assert first.status in ("completed", "incomplete") and "Paris" in first.output_text
    assert first.usage.total_tokens == first.usage.input_tokens + first.usage.output_tokens

    with client.responses.with_streaming_response.create(
        model=VLLM_MODEL, previous_response_id=first.id, input="And of Italy?", stream=True, **GREEDY
    ) as streamed:
        assert streamed.headers[REPLICA_HEADER] == vllm_replica.replica_id
        events = list(streamed.parse())
    kinds = [kind + "..." if kind.endswith(".delta") else kind for kind, _ in groupby(e.type for e in events)]
    final = events[-1].response
    assert kinds == [
        "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
        "response.output_text.delta...", "response.output_text.done", "response.content_part.done",
        "response.output_item.done", f"response.{final.status}",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert final.output_text and final.instructions is None
    # The continuation's prompt holds the first turn: more input tokens than the first turn's whole prompt.
    assert final.usage.input_tokens > first.usage.input_tokens

    items = list(client.responses.input_items.list(final.id, order="asc"))
    assert [(i.type, i.role) for i in items] == [("message", "user"), ("message", "assistant"), ("message", "user")]
    assert items[1].content[0].text == first.output_text
    assert client.responses.retrieve(final.id).output_text == final.output_text
