"""Anthropic Messages against real vLLM on CPU (the bundled SmolLM2-135M), through a router process.

The session's vLLM replica registers in the same Redis as the router cluster, so
the router serves ``smollm2-135m`` beside the sim models. Greedy decoding makes
streaming and non-streaming comparable token for token.
"""

from __future__ import annotations

from conftest import VLLM_MODEL
from messages_helpers import anthropic_client, shape, stream_message, without_ids
from router_process import RouterProcess, router_cluster, sim_router  # noqa: F401

CAPITAL = [{"role": "user", "content": "What is the capital of France?"}]
HELLO = [{"role": "user", "content": "Say hello"}]
GREEDY = {"temperature": 0}


def test_vllm_message_streaming_matches_non_streaming(vllm_replica, sim_router: RouterProcess):
    sim_router.wait_for_replicas(VLLM_MODEL, 1, timeout=60)
    client = anthropic_client(sim_router)
    params = {"model": VLLM_MODEL, "max_tokens": 24, "messages": CAPITAL, "system": "Answer in one sentence.",
              "extra_body": GREEDY}
    message = client.messages.create(**params)
    assert [block.type for block in message.content] == ["text"]
    assert "Paris" in message.content[0].text
    assert message.stop_reason in ("end_turn", "max_tokens")
    assert 0 < message.usage.output_tokens <= 24

    events, streamed = stream_message(client, **params)
    assert shape(events) == [
        "message_start", "content_block_start:text", "content_block_delta:text_delta", "content_block_stop",
        "message_delta", "message_stop",
    ]
    # Content and stop reason agree; the usage split may differ (the repeat hits the prefix cache).
    streamed_body, message_body = without_ids(streamed), without_ids(message)
    assert streamed_body.pop("usage") and message_body.pop("usage")
    assert streamed_body == message_body
    assert streamed.usage.output_tokens == message.usage.output_tokens
    total_input = streamed.usage.input_tokens + streamed.usage.cache_read_input_tokens
    assert total_input == message.usage.input_tokens + message.usage.cache_read_input_tokens
    assert events[0].message.usage.input_tokens == total_input

    counted = client.messages.count_tokens(model=VLLM_MODEL, messages=CAPITAL, system="Answer in one sentence.")
    assert counted.input_tokens == total_input


def test_vllm_max_tokens_and_stop_sequence(vllm_replica, sim_router: RouterProcess):
    sim_router.wait_for_replicas(VLLM_MODEL, 1, timeout=60)
    client = anthropic_client(sim_router)
    cut = client.messages.create(model=VLLM_MODEL, max_tokens=2, messages=HELLO, extra_body=GREEDY)
    assert (cut.stop_reason, cut.usage.output_tokens) == ("max_tokens", 2)
    full = client.messages.create(model=VLLM_MODEL, max_tokens=24, messages=CAPITAL, extra_body=GREEDY).content[0].text
    stop = "Paris"
    assert stop in full
    stopped = client.messages.create(
        model=VLLM_MODEL, max_tokens=24, messages=CAPITAL, stop_sequences=[stop], extra_body=GREEDY
    )
    assert (stopped.stop_reason, stopped.stop_sequence) == ("stop_sequence", stop)
    assert stopped.content == [] or full.startswith(stopped.content[0].text)


def test_vllm_system_blocks_arrive_whole_after_claude_codes_attribution_header(vllm_replica, sim_router: RouterProcess):
    """Claude Code's first system block is its attribution header; the blocks after it must all reach the model."""
    sim_router.wait_for_replicas(VLLM_MODEL, 1, timeout=60)
    client = anthropic_client(sim_router)
    # Longer than SmolLM2's default system prompt, which its template adds when the system text is empty.
    prompt = ("You are a helpful assistant for a team of software engineers. Answer every question in one short "
              "sentence, name the file you mean when you refer to code, and say so plainly when you do not know.")
    header = {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.197.0df; cc_entrypoint=cli;"}
    alone = client.messages.count_tokens(model=VLLM_MODEL, messages=HELLO, system=prompt).input_tokens
    behind_header = client.messages.count_tokens(
        model=VLLM_MODEL, messages=HELLO, system=[header, {"type": "text", "text": prompt}]).input_tokens
    split = client.messages.count_tokens(
        model=VLLM_MODEL, messages=HELLO,
        system=[header, {"type": "text", "text": "You are a helpful assistant."},
                {"type": "text", "text": prompt}]).input_tokens
    # vLLM drops the header's own line (its value changes every request); everything after it stays.
    assert behind_header >= alone
    # Two blocks after the header are a line apart, never glued: at least the tokens of both.
    assert split > alone
