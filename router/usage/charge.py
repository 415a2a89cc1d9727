"""What one request is charged to its key's usage ledger (pure): ``Charge`` and ``charge_for``.

Every request the router answered after authenticating it is charged once, when
it ends, however it ends:

- a generation that finished: the engine's usage — input (prompt) tokens, the
  part of them read from the prefix cache (cached input), output (completion)
  tokens and the reasoning tokens among them;
- a generation that ended before its usage arrived (the client went away, the
  replica died mid-stream, the router failed): the prompt the engine reported
  at its start (``started.prompt_tokens``: it has been prefilled) and one output
  token per token-bearing event received (the engine emits one per step), so
  hanging up does not dodge a budget or a token rate limit; cached input is
  unknown then and charged as 0;
- a request refused before any generation (a 4xx, a 429, no replica): a request
  and an error, no tokens.

Outcomes: ``ok``, ``error`` (an error status, or a generation that ended with
an error), ``client_closed`` (499). Latencies are whole milliseconds: time to
the first output (only when there was one), the whole request, the admission
queue wait. A request whose tool loop ran server-side tools (``router.server_tools``) is charged the tokens of
every turn it took (the loop's usage is their sum) and counts its ``tool_calls``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fleetgate.router.canonical.fold import Completion
from fleetgate.router.request_metrics import CLIENT_CLOSED
from fleetgate.router.usage.key_labels import ANONYMOUS_KEY

Outcome = Literal["ok", "error", "client_closed"]


@dataclass(frozen=True)
class Charge:
    key_id: str
    model: str
    # Unix time the request ended (its UTC day is the ledger day).
    at: float
    outcome: Outcome
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    ttft_ms: int | None = None
    duration_ms: int = 0
    queue_ms: int = 0
    # Server-side tool calls the request's tool loop ran (router.server_tools; its turns are in the tokens).
    tool_calls: int = 0
    # The key's rate-limit window to charge the tokens to as well ("" when the key has no token limit).
    window: str = ""

    def counters(self) -> dict[str, int]:
        """The ledger counters this charge adds to (``router.usage.ledger``)."""
        return {
            "requests": 1,
            "errors": int(self.outcome == "error"),
            "client_closed": int(self.outcome == "client_closed"),
            "input_tokens": self.input_tokens,
            "cached_input_tokens": self.cached_input_tokens,
            "output_tokens": self.output_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "ttft_ms_sum": self.ttft_ms or 0,
            "ttft_count": int(self.ttft_ms is not None),
            "duration_ms_sum": self.duration_ms,
            "queue_ms_sum": self.queue_ms,
            "tool_calls": self.tool_calls,
        }


def outcome_of(status: int, completion: Completion | None) -> Outcome:
    if status == CLIENT_CLOSED:
        return "client_closed"
    if status >= 400 or (completion is not None and completion.error is not None):
        return "error"
    return "ok"


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else max(0, round(seconds * 1000))


@dataclass(frozen=True)
class ChargedTokens:
    """The tokens a generation is charged: the engine's usage, or for one cut short, its prefilled prompt and one
    output token per token event received (cached input and reasoning then unknown: 0)."""

    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0

    @classmethod
    def of(cls, completion: Completion | None) -> ChargedTokens:
        if completion is None:
            return cls()
        usage = completion.usage
        if completion.usage_reported:
            return cls(usage.prompt_tokens, usage.cache_read, usage.completion_tokens, usage.reasoning_tokens)
        return cls(usage.prompt_tokens, 0, completion.output_events, 0)

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens


def charge_for(
    key_id: str, model: str, *, at: float, status: int, completion: Completion | None, ttft_seconds: float | None,
    duration_seconds: float, queue_seconds: float, window: str = "",
) -> Charge:
    """The charge of a request that ended with ``status`` after generating ``completion`` (None: no generation)."""
    tokens = ChargedTokens.of(completion)
    return Charge(
        key_id=key_id or ANONYMOUS_KEY, model=model, at=at, outcome=outcome_of(status, completion),
        input_tokens=tokens.input_tokens, cached_input_tokens=tokens.cached_input_tokens,
        output_tokens=tokens.output_tokens, reasoning_tokens=tokens.reasoning_tokens, ttft_ms=_ms(ttft_seconds),
        duration_ms=_ms(duration_seconds) or 0, queue_ms=_ms(queue_seconds) or 0, window=window,
        tool_calls=server_tool_calls(completion),
    )


def server_tool_calls(completion: Completion | None) -> int:
    """The server-side tool calls that ran in ``completion`` (an MCP listing or an approval request is none)."""
    if completion is None:
        return 0
    return sum(1 for call in completion.server_tools if call.tool not in ("mcp_list_tools", "mcp_approval_request"))
