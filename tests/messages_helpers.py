"""Helpers for Anthropic Messages tests: the official SDK pointed at a router, stream grammar, comparable messages."""

from __future__ import annotations

import itertools
from typing import Any

import anthropic
from anthropic.types import Message, RawMessageStreamEvent

from router_process import RouterProcess

# The wire events; the SDK's stream also yields its own convenience events ("text", "thinking", ...).
RAW_EVENT_TYPES = {
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
}


def anthropic_client(router: RouterProcess, api_key: str = "unused") -> anthropic.Anthropic:
    """The official SDK against ``router``, without client-side retries (tests see every status)."""
    return anthropic.Anthropic(base_url=router.base_url, api_key=api_key, max_retries=0, timeout=60.0)


def shape(events: list[RawMessageStreamEvent]) -> list[str]:
    """Event types (with the delta or block type), consecutive repeats collapsed: the stream's grammar."""
    labels = []
    for event in events:
        if event.type == "content_block_start":
            labels.append(f"content_block_start:{event.content_block.type}")
        elif event.type == "content_block_delta":
            labels.append(f"content_block_delta:{event.delta.type}")
        else:
            labels.append(event.type)
    return [label for label, _ in itertools.groupby(labels)]


def stream_message(client: anthropic.Anthropic, **params) -> tuple[list[RawMessageStreamEvent], Message]:
    """The raw events and the message the SDK's stream accumulator built from them."""
    with client.messages.stream(**params) as stream:
        events = [event for event in stream if event.type in RAW_EVENT_TYPES]
        final = stream.get_final_message()
    return events, final


def whole_prompt(usage: Any) -> int:
    """The prompt's tokens, however the replica's prefix cache split them (input + cache read + cache write)."""
    return usage.input_tokens + (usage.cache_read_input_tokens or 0) + (usage.cache_creation_input_tokens or 0)


def without_ids(message: Message) -> dict:
    """The message minus the ids that differ per request (message id, tool_use ids) and SDK-only fields; its
    usage with the whole prompt in place of the cache split (a second request reads the first's blocks)."""
    body = message.model_dump(exclude={"id"})
    for block in body["content"]:
        block.pop("id", None)
        block.pop("parsed_output", None)
    for field in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"):
        body["usage"].pop(field)
    body["usage"]["whole_prompt"] = whole_prompt(message.usage)
    return body
