"""The interface between the vLLM engine and a prompt format (chat template + vLLM parsers, or harmony).

A ``PromptFormat`` renders a canonical request into the engine's prompt (text or
token ids) and creates one ``OutputParser`` per request. The parser is fed the
engine's incremental output and returns canonical events (reasoning, text,
tool-call start / argument deltas / end). The engine itself emits ``started``,
``usage`` and ``finish``; it asks the parser whether tool calls were made, so the
finish reason can say ``tool_calls``.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

from fleetgate.v1 import replica_pb2 as pb


@dataclass
class RenderedPrompt:
    """Engine input for one request: exactly one of ``text`` / ``token_ids`` is used."""

    token_ids: list[int] | None = None
    text: str | None = None
    # Extra token ids that end generation (e.g. harmony's <|return|> and <|call|>).
    stop_token_ids: list[int] = field(default_factory=list)
    # Images etc. for a vision model, keyed by modality as vLLM takes them.
    multi_modal_data: dict[str, Any] | None = None


class OutputParser(abc.ABC):
    """Turns one request's incremental engine output into canonical events."""

    @abc.abstractmethod
    def feed(self, delta_text: str, delta_token_ids: list[int]) -> list[pb.GenerateEvent]:
        """Events for the newly generated text / tokens (may be empty while buffering)."""

    @abc.abstractmethod
    def close(self) -> list[pb.GenerateEvent]:
        """Flush what is buffered at the end of generation (closing any open tool call)."""

    @property
    @abc.abstractmethod
    def made_tool_calls(self) -> bool:
        """True once at least one tool call has been emitted."""

    @property
    def reasoning_tokens(self) -> int:
        """Completion tokens that were reasoning, where the format can tell (0 otherwise)."""
        return 0

    @property
    def skip_special_tokens(self) -> bool:
        """Whether the engine may drop special tokens from the text it feeds (some tool parsers need them)."""
        return True

    def bind_prompt(self, prompt_token_ids: list[int]) -> None:  # noqa: B027  (optional: a no-op by default)
        """Called once with the final prompt token ids before the first ``feed`` (optional hook)."""


class PromptFormat(abc.ABC):
    """How a model's prompts are rendered and its output parsed."""

    @abc.abstractmethod
    def render(self, request: pb.GenerateRequest) -> RenderedPrompt: ...

    @abc.abstractmethod
    def new_parser(self, request: pb.GenerateRequest) -> OutputParser: ...
