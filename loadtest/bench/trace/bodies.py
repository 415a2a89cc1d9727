"""The streamed request a trace row becomes, in each dialect: path, headers and JSON body.

One user message holding the synthesised prompt, one text part per trace block
(``TRACE_BLOCK_TOKENS`` words), ``max_tokens`` (or its dialect's name) set to the
row's ``output_length``, usage in the stream. Parts, because a conversation grows
by whole messages and parts, and the router's prefix chain hashes each part as a
unit: two requests sharing their first k blocks share their first k parts, as two
turns of an agent share their first messages. Responses requests are
``store: false`` (what Codex sends), so the router keeps no copy of big prompts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from fleetgate.loadtest.bench.trace.mooncake import TRACE_BLOCK_TOKENS
from fleetgate.loadtest.bench.trace.prompts import WORD_CHARS

DIALECTS = ("chat", "messages", "responses")
_PATHS = {"chat": "/v1/chat/completions", "messages": "/v1/messages", "responses": "/v1/responses"}
_HEADERS = {
    "chat": {"content-type": "application/json"},
    "messages": {"content-type": "application/json", "anthropic-version": "2023-06-01"},
    "responses": {"content-type": "application/json"},
}


@dataclass(frozen=True)
class Dialect:
    name: str

    def __post_init__(self) -> None:
        if self.name not in DIALECTS:
            raise ValueError(f"unknown dialect {self.name!r}; choose from {', '.join(DIALECTS)}")

    @property
    def path(self) -> str:
        return _PATHS[self.name]

    @property
    def headers(self) -> dict[str, str]:
        return _HEADERS[self.name]

    def body(self, model: str, prompt: str, max_tokens: int) -> bytes:
        return orjson.dumps(self._body(model, prompt, max_tokens))

    def _body(self, model: str, prompt: str, max_tokens: int) -> dict[str, Any]:
        blocks = _blocks(prompt)
        if self.name == "chat":
            content = [{"type": "text", "text": block} for block in blocks]
            return {"model": model, "messages": [{"role": "user", "content": content}], "max_tokens": max_tokens,
                    "stream": True, "stream_options": {"include_usage": True}}
        if self.name == "messages":
            content = [{"type": "text", "text": block} for block in blocks]
            return {"model": model, "messages": [{"role": "user", "content": content}], "max_tokens": max_tokens,
                    "stream": True}
        parts = [{"type": "input_text", "text": block} for block in blocks]
        return {"model": model, "input": [{"role": "user", "content": parts}], "max_output_tokens": max_tokens,
                "stream": True, "store": False}


def _blocks(prompt: str) -> list[str]:
    """The prompt cut where its trace blocks meet (the first block lost its leading space in ``prompt_text``)."""
    first = TRACE_BLOCK_TOKENS * WORD_CHARS - 1
    return [prompt[:first]] + [prompt[start:start + TRACE_BLOCK_TOKENS * WORD_CHARS]
                               for start in range(first, len(prompt), TRACE_BLOCK_TOKENS * WORD_CHARS)]
