"""Wire schema of ``POST /v1/completions`` requests (pydantic v2; unknown fields accepted and ignored)."""

from __future__ import annotations

from fleetgate.router.canonical.bounds import TokenLimit
from fleetgate.router.dialects.openai_common import OpenAISamplingFields


class CompletionRequest(OpenAISamplingFields):
    # One prompt: a string, or a list holding exactly one string.
    prompt: str | list[str]
    max_tokens: TokenLimit | None = 16
    echo: bool | None = None
    suffix: str | None = None
    best_of: int | None = None
    logprobs: int | None = None
