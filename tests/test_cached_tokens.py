"""Cached tokens reported honestly in every dialect, with the official SDKs against a sim router (issue 13, item 6).

The sim's prefix cache is on: a request whose prompt shares a long prefix with an
earlier one reads that prefix's full blocks from the cache, and a cold request
writes its full blocks into it. Each dialect says so in its own words:

- Chat: ``usage.prompt_tokens`` is the whole prompt, ``prompt_tokens_details.cached_tokens`` the part read;
- Responses: ``usage.input_tokens`` is the whole prompt, ``input_tokens_details.cached_tokens`` the part read and
  ``cache_write_tokens`` the part written;
- Messages (Anthropic's meaning): ``cache_read_input_tokens`` + ``cache_creation_input_tokens`` +
  ``input_tokens`` = the prompt, three disjoint parts; ``message_start`` carries the whole prompt as input (the
  split is not known yet), the final ``message_delta`` the split.

Every test uses a prefix of its own (a random word in it), so the first request is cold whatever ran before.
"""

from __future__ import annotations

import secrets
from typing import Any

import openai

from messages_helpers import anthropic_client, stream_message, whole_prompt
from router_process import ROUTER_CONFIG, RouterProcess, router_cluster, router_factory, sim_router  # noqa: F401

MODEL = "rt-sim"
# The sim's KV block (sim.kv_block_size default): only full blocks are cached.
BLOCK_TOKENS = 16


def long_prefix() -> str:
    """A system prompt of about 300 sim tokens no other test sends."""
    words = " ".join(f"rule{i} keeps the build green" for i in range(60))
    return f"session {secrets.token_hex(8)}: you are a careful coding agent. {words}"


def turns(*texts: str) -> list[dict[str, str]]:
    """Alternating user / assistant turns."""
    return [{"role": "user" if i % 2 == 0 else "assistant", "content": text} for i, text in enumerate(texts)]


# ---------------------------------------------------------------- Messages


def anthropic_parts(usage: Any) -> tuple[int, int, int]:
    return usage.input_tokens, usage.cache_read_input_tokens, usage.cache_creation_input_tokens


def test_messages_report_cache_reads_and_writes_with_anthropics_meaning(sim_router: RouterProcess) -> None:
    client = anthropic_client(sim_router)
    system = long_prefix()
    first = client.messages.create(model=MODEL, max_tokens=8, system=system, messages=turns("list the files"))
    prompt = whole_prompt(first.usage)
    uncached, read, written = anthropic_parts(first.usage)
    # Cold: nothing read, every full block of the prompt written, the partial tail block is plain input.
    assert read == 0
    assert written > 0 and written % BLOCK_TOKENS == 0 and prompt - written < BLOCK_TOKENS
    assert uncached == prompt - read - written

    later = turns("list the files", first.content[0].text, "which one is bigger?")
    second = client.messages.create(model=MODEL, max_tokens=8, system=system, messages=later)
    first_written = written
    uncached, read, written = anthropic_parts(second.usage)
    # The shared prefix (the system prompt, the first turn) is read from the blocks the first request wrote.
    assert prompt // 2 < read <= first_written and read % BLOCK_TOKENS == 0
    assert uncached + read + written == whole_prompt(second.usage) > prompt


def test_messages_streamed_usage_equals_the_non_streamed(sim_router: RouterProcess) -> None:
    client = anthropic_client(sim_router)
    params: dict[str, Any] = {"model": MODEL, "max_tokens": 8, "system": long_prefix(),
                              "messages": turns("say hello")}
    cold_events, cold = stream_message(client, **params)
    start, delta = cold_events[0], next(e for e in cold_events if e.type == "message_delta")
    # message_start: the whole prompt as input, nothing known of the cache yet; message_delta: the split.
    assert anthropic_parts(start.message.usage) == (whole_prompt(cold.usage), 0, 0)
    assert anthropic_parts(delta.usage) == anthropic_parts(cold.usage)
    assert cold.usage.cache_read_input_tokens == 0 and cold.usage.cache_creation_input_tokens > 0

    # Warm, the same prompt: streamed and non-streamed see the same cache, so the same split.
    warm_events, streamed = stream_message(client, **params)
    message = client.messages.create(**params)
    assert anthropic_parts(streamed.usage) == anthropic_parts(message.usage)
    assert streamed.usage.output_tokens == message.usage.output_tokens
    assert whole_prompt(streamed.usage) == whole_prompt(message.usage) == whole_prompt(cold.usage)
    assert message.usage.cache_read_input_tokens > 0
    assert anthropic_parts(warm_events[0].message.usage) == (whole_prompt(message.usage), 0, 0)


def claude_code_turn(router: RouterProcess, system: str, build: str) -> Any:
    """The usage of a Claude-Code-shaped turn: the billing header block (build suffix ``build``), then ``system``."""
    header = f"x-anthropic-billing-header: cc_version=2.1.197.{build}; cc_entrypoint=cli;"
    blocks = [{"type": "text", "text": header}, {"type": "text", "text": system}]
    return anthropic_client(router).messages.create(model=MODEL, max_tokens=8, system=blocks,
                                                    messages=turns("hi")).usage


def test_claude_codes_changing_billing_header_still_reads_the_cache(sim_router: RouterProcess) -> None:
    """Normalised by default: the per-request build suffix does not make every prompt new from its first token."""
    system = long_prefix()
    cold = claude_code_turn(sim_router, system, "0df")
    assert cold.cache_read_input_tokens == 0
    warm = claude_code_turn(sim_router, system, "84c")
    assert warm.cache_read_input_tokens == cold.cache_creation_input_tokens > 0


def test_kept_billing_header_makes_every_prompt_cold(router_factory) -> None:  # noqa: F811
    router = router_factory(env={"FLEETGATE_ROUTER__CLAUDE_CODE_BILLING_HEADER": "keep"})
    router.wait_for_replicas(MODEL, 1, timeout=30)
    system = long_prefix()
    reads = [claude_code_turn(router, system, build).cache_read_input_tokens for build in ("0df", "84c")]
    assert reads == [0, 0]


# ---------------------------------------------------------------- Chat


def chat_parts(usage: Any) -> tuple[int, int]:
    return usage.prompt_tokens, usage.prompt_tokens_details.cached_tokens


def streamed_chat_usage(client: openai.OpenAI, **params: Any) -> Any:
    chunks = list(client.chat.completions.create(**params, stream=True, stream_options={"include_usage": True}))
    return chunks[-1].usage


def test_chat_reports_cached_tokens_and_streamed_equals_non_streamed(sim_router: RouterProcess) -> None:
    client = sim_router.openai()
    messages = [{"role": "system", "content": long_prefix()}, *turns("list the files")]
    cold = client.chat.completions.create(model=MODEL, messages=messages)
    assert chat_parts(cold.usage)[1] == 0

    later = [*messages, {"role": "assistant", "content": cold.choices[0].message.content},
             {"role": "user", "content": "which one is bigger?"}]
    warm = client.chat.completions.create(model=MODEL, messages=later)
    prompt, cached = chat_parts(warm.usage)
    assert 0 < cached < prompt and cached % BLOCK_TOKENS == 0
    # Repeated, streamed then not: both find every full block the warm turn wrote, so the same usage.
    streamed = streamed_chat_usage(client, model=MODEL, messages=later)
    repeat = client.chat.completions.create(model=MODEL, messages=later).usage
    assert chat_parts(streamed) == chat_parts(repeat)
    assert prompt - BLOCK_TOKENS < chat_parts(repeat)[1] <= prompt
    assert streamed.completion_tokens == repeat.completion_tokens == warm.usage.completion_tokens


# ---------------------------------------------------------------- Responses


def responses_parts(usage: Any) -> tuple[int, int, int]:
    details = usage.input_tokens_details
    return usage.input_tokens, details.cached_tokens, details.cache_write_tokens


def streamed_response_usage(client: openai.OpenAI, **params: Any) -> Any:
    events = list(client.responses.create(**params, stream=True))
    completed = [e for e in events if e.type == "response.completed"]
    assert len(completed) == 1
    return completed[0].response.usage


def test_responses_report_cached_and_written_tokens_streamed_and_not(sim_router: RouterProcess) -> None:
    client = sim_router.openai()
    instructions = long_prefix()
    cold = client.responses.create(model=MODEL, instructions=instructions, input="list the files", store=False)
    prompt, cached, written = responses_parts(cold.usage)
    assert cached == 0 and written > 0 and prompt - written < BLOCK_TOKENS

    # Codex's way: store false, the whole conversation resent.
    history = [{"role": "user", "content": "list the files"},
               {"role": "assistant", "content": cold.output_text},
               {"role": "user", "content": "which one is bigger?"}]
    params = {"model": MODEL, "instructions": instructions, "input": history, "store": False}
    warm = client.responses.create(**params)
    prompt, cached, written = responses_parts(warm.usage)
    assert cached > 0 and cached + written <= prompt
    # Repeated, streamed then not: both read what the warm turn read and wrote.
    streamed = responses_parts(streamed_response_usage(client, **params))
    repeat = responses_parts(client.responses.create(**params).usage)
    assert streamed == repeat
    assert repeat[:2] == (prompt, cached + written)
