"""Token budgets, the model allowlist and the ``max_tokens`` cap of a key, decided before dispatch (pure).

A budget (``router.key_policy.Budgets``) is a number of tokens per UTC day or
UTC calendar month: ``tokens`` counts input + output, ``input_tokens`` and
``output_tokens`` one side each. ``standings`` says, for each budget a key has,
how much of it the key used (``router.usage.ledger.BudgetUse``: everything
charged so far, from every router) and when it resets; a request is refused
once any budget is used up (used >= budget). The request that takes a key past
its budget is served whole: the check is before dispatch, the charge after.

The refusal is a 429 in the dialect's shape (OpenAI: type and code
``insufficient_quota``; Anthropic: ``rate_limit_error``), with ``Retry-After``
the seconds to the reset and a message naming the budget, its use and its reset.
Every answer of a key with budgets carries the dialect's budget headers
(``Dialect.budget_headers``, from ``standings``).

A key with a model allowlist is refused any other model with a 403
(``permission_error``, code ``model_not_allowed``). A request asking for more
completion tokens than the key's ``max_tokens`` cap, or for none, is lowered to
the cap (coding agents send a fixed, large ``max_tokens`` and cannot be told a
per-key one); the answer's ``x-fleetgate-max-tokens-cap`` header says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fleetgate.router.errors import ApiError, ErrorKind, echoed
from fleetgate.router.key_policy import BudgetKind, KeyPolicy, Period
from fleetgate.router.rate_limit import rfc3339
from fleetgate.router.usage.ledger import BudgetUse, day_of, period_end

MAX_TOKENS_CAP_HEADER = "x-fleetgate-max-tokens-cap"

_KIND_WORDS = {"tokens": "tokens (input + output)", "input_tokens": "input tokens", "output_tokens": "output tokens"}


@dataclass(frozen=True)
class BudgetStanding:
    period: Period
    kind: BudgetKind
    limit: int
    used: int
    # Unix time the period ends (the budget starts again).
    resets_at: float

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)

    @property
    def exhausted(self) -> bool:
        return self.used >= self.limit


def _used(use: BudgetUse, period: Period, kind: BudgetKind) -> int:
    spent_in = use.day_input_tokens if period == "day" else use.month_input_tokens
    spent_out = use.day_output_tokens if period == "day" else use.month_output_tokens
    return {"tokens": spent_in + spent_out, "input_tokens": spent_in, "output_tokens": spent_out}[kind]


def standings(policy: KeyPolicy, use: BudgetUse, now: float) -> list[BudgetStanding]:
    """Each budget of ``policy``, what of it ``use`` spent, and its reset (UTC day or month of ``now``)."""
    day = day_of(now)
    return [
        BudgetStanding(period, kind, limit, _used(use, period, kind), period_end(period, day).timestamp())
        for period, kind, limit in policy.budgets.limits()
    ]


def budget_exceeded(standing: BudgetStanding, *, key_name: str, now: float, headers: dict[str, str]) -> ApiError:
    """The 429 of a request refused by ``standing``."""
    retry_after = max(1, math.ceil(standing.resets_at - now))
    message = (
        f"Token budget reached for API key {echoed(key_name or 'anonymous')}: {standing.limit} "
        f"{_KIND_WORDS[standing.kind]} per {standing.period}, used {standing.used}, 0 left; it resets at "
        f"{rfc3339(standing.resets_at)} (in {retry_after}s)."
    )
    return ApiError(429, ErrorKind.RATE_LIMIT, message, retry_after=retry_after, code="insufficient_quota",
                    openai_type="insufficient_quota", extra_headers=headers)


def model_not_allowed(model: str, policy: KeyPolicy, key_name: str) -> ApiError:
    allowed = ", ".join(policy.models)
    return ApiError(403, ErrorKind.PERMISSION, f"API key {echoed(key_name)} may not use the model {echoed(model)}; "
                    f"it may use: {allowed}", "model", code="model_not_allowed")


def capped_max_tokens(requested: int | None, cap: int | None) -> int | None:
    """The completion tokens a request may ask for under ``cap``: None when it is left as it is."""
    if cap is None or (requested is not None and 0 < requested <= cap):
        return None
    return cap
