"""The streamed request a trace row becomes, in each dialect: path, headers and JSON body.

One user message holding the synthesised prompt, ``max_tokens`` (or its dialect's
name) set to the row's ``output_length``, usage in the stream. Responses requests
are ``store: false`` (what Codex sends), so the router keeps no copy of big prompts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

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
        if self.name == "chat":
            return {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
                    "stream": True, "stream_options": {"include_usage": True}}
        if self.name == "messages":
            return {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
                    "stream": True}
        return {"model": model, "input": prompt, "max_output_tokens": max_tokens, "stream": True, "store": False}
