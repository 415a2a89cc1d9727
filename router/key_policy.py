"""What an API key may do beyond its rate limits: role, owner, token budgets, model allowlist, caps, fair share.

One ``KeyPolicy`` per key, stored as fields of the key's record hash in Redis
(``router.auth``; field names below), read by the same ``HGETALL`` that
authenticates a request, so a change takes effect on every router at once:

- ``role``: ``admin`` (may use ``/v1/admin/*``) or ``user`` (the default).
- ``owner``: free text (a person or team), shown in listings and usage.
- budgets (``budget_<period>_<kind>``): tokens a key may use per UTC day
  and per UTC calendar month, as a total (``tokens``: input + output) and/or
  separately for ``input_tokens`` and ``output_tokens``; unset is unlimited.
  Enforced before dispatch from the usage ledger (``router.usage``).
- ``models``: the models the key may call (a JSON list; unset or empty: all).
- ``max_tokens``: a cap on the completion tokens one request may ask for
  (a larger request is refused with a 400 naming the cap).
- ``weight``: the key's share under contention (``router.admission``'s fair
  share: a key of weight 2 gets twice the tokens of a key of weight 1).
- ``priority``: passed to the engine when its scheduler is priority-based
  (vLLM ``scheduling_policy: priority``: lower is served first), 0 by default.
- ``server_tools``: the key may have the server run tools for it (``router.server_tools``: remote MCP
  servers, sandboxed python and bash, web search); off by default.

The pure part only: encoding to and from the record's fields and validation.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Literal

Role = Literal["admin", "user"]
ROLES: tuple[Role, ...] = ("admin", "user")
Period = Literal["day", "month"]
PERIODS: tuple[Period, ...] = ("day", "month")
BudgetKind = Literal["tokens", "input_tokens", "output_tokens"]
BUDGET_KINDS: tuple[BudgetKind, ...] = ("tokens", "input_tokens", "output_tokens")

# Every field a policy writes in the key's record (so a new policy replaces an old one whole).
BUDGET_FIELDS = tuple(f"budget_{period}_{kind}" for period in PERIODS for kind in BUDGET_KINDS)
POLICY_FIELDS = ("role", "owner", "models", "max_tokens", "weight", "priority", "server_tools", *BUDGET_FIELDS)

MAX_WEIGHT = 1000.0
PRIORITY_RANGE = (-1000, 1000)


@dataclass(frozen=True)
class Budgets:
    """Tokens per UTC day and per UTC month; None is unlimited."""

    day_tokens: int | None = None
    day_input_tokens: int | None = None
    day_output_tokens: int | None = None
    month_tokens: int | None = None
    month_input_tokens: int | None = None
    month_output_tokens: int | None = None

    def get(self, period: Period, kind: BudgetKind) -> int | None:
        value: int | None = getattr(self, f"{period}_{kind}")
        return value

    def limits(self) -> list[tuple[Period, BudgetKind, int]]:
        """The budgets that are set: (period, kind, tokens)."""
        return [(p, k, v) for p in PERIODS for k in BUDGET_KINDS if (v := self.get(p, k)) is not None]

    @property
    def any(self) -> bool:
        return bool(self.limits())


@dataclass(frozen=True)
class KeyPolicy:
    role: Role = "user"
    owner: str = ""
    budgets: Budgets = field(default_factory=Budgets)
    models: tuple[str, ...] = ()
    max_tokens: int | None = None
    weight: float = 1.0
    priority: int = 0
    server_tools: bool = False

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def allows_model(self, model: str) -> bool:
        return not self.models or model in self.models

    def validated(self) -> KeyPolicy:
        """This policy, or a ValueError naming the first field out of range."""
        if self.role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, got {self.role!r}")
        for period, kind, value in self.budgets.limits():
            if value < 1:
                raise ValueError(f"budget {period} {kind} must be a positive number of tokens, got {value}")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {self.max_tokens}")
        if not 0 < self.weight <= MAX_WEIGHT:
            raise ValueError(f"weight must be above 0 and at most {MAX_WEIGHT:g}, got {self.weight:g}")
        low, high = PRIORITY_RANGE
        if not low <= self.priority <= high:
            raise ValueError(f"priority must be between {low} and {high}, got {self.priority}")
        if any(not m or not isinstance(m, str) for m in self.models):
            raise ValueError("models must be a list of model names")
        return self

    def to_fields(self) -> dict[str, str]:
        """The record fields of this policy (defaults are left out: absent is the default)."""
        out: dict[str, str] = {}
        if self.role != "user":
            out["role"] = self.role
        if self.owner:
            out["owner"] = self.owner
        if self.models:
            out["models"] = json.dumps(list(self.models))
        if self.max_tokens is not None:
            out["max_tokens"] = str(self.max_tokens)
        if self.weight != 1.0:
            out["weight"] = repr(self.weight)
        if self.priority:
            out["priority"] = str(self.priority)
        if self.server_tools:
            out["server_tools"] = "1"
        for period, kind, value in self.budgets.limits():
            out[f"budget_{period}_{kind}"] = str(value)
        return out

    @classmethod
    def from_fields(cls, record: Mapping[str, str]) -> KeyPolicy:
        """The policy a key's record holds (fields absent or empty take their defaults)."""
        budgets = Budgets(**{
            f.name: int(record[key]) for f in fields(Budgets) if (key := f"budget_{f.name}") in record and record[key]
        })
        role = record.get("role") or "user"
        return cls(
            role="admin" if role == "admin" else "user",
            owner=record.get("owner", ""),
            budgets=budgets,
            models=tuple(json.loads(record["models"])) if record.get("models") else (),
            max_tokens=int(record["max_tokens"]) if record.get("max_tokens") else None,
            weight=float(record["weight"]) if record.get("weight") else 1.0,
            priority=int(record["priority"]) if record.get("priority") else 0,
            server_tools=record.get("server_tools") == "1",
        )

    def with_budget(self, period: Period, kind: BudgetKind, tokens: int | None) -> KeyPolicy:
        """This policy with one budget set (None or 0: unlimited)."""
        return replace(self, budgets=replace(self.budgets, **{f"{period}_{kind}": tokens or None}))
