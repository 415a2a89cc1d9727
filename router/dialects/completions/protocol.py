"""Wire schema of ``POST /v1/completions`` requests (pydantic v2; unknown fields accepted and ignored)."""

from __future__ import annotations

from pydantic import Field

from fleetgate.router.dialects.openai_common import OpenAISamplingFields


class CompletionRequest(OpenAISamplingFields):
    # One prompt: a string, or a list holding exactly one string.
    prompt: str | list[str]
    max_tokens: int | None = Field(16, ge=1)
    echo: bool | None = None
    suffix: str | None = None
    best_of: int | None = None
    logprobs: int | None = None
