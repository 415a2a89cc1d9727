"""Request bodies of the admin API: a new key's settings (POST) and a change of settings (PATCH).

Each maps onto a ``KeyPatch`` (``router/key_admin.py``): a field absent from the
body is left as it is; ``null`` clears ``rpm`` / ``tpm`` (the router's default
again), ``max_tokens``, a budget (unlimited), the owner and the model allowlist (all
models), and resets ``weight`` (1), ``priority`` (0) and ``server_tools`` (false); ``name``
and ``role`` cannot be null; ``server_tools`` is a JSON boolean, nothing else. Unknown fields
and out-of-range values are a 400 naming the field.
Ranges come from ``router/key_policy.py``.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, field_validator

from fleetgate.router.key_admin import BUDGET_NAMES, KeyPatch
from fleetgate.router.key_policy import MAX_WEIGHT, PRIORITY_RANGE, Role

MAX_NAME_CHARS = 200
MAX_MODELS = 1000

Tokens = Annotated[StrictInt, Field(ge=1)]
ModelName = Annotated[str, Field(min_length=1, max_length=MAX_NAME_CHARS)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BudgetsBody(_Body):
    """Tokens per UTC day / month, total (input + output) or per kind; null: unlimited."""

    day_tokens: Tokens | None = None
    day_input_tokens: Tokens | None = None
    day_output_tokens: Tokens | None = None
    month_tokens: Tokens | None = None
    month_input_tokens: Tokens | None = None
    month_output_tokens: Tokens | None = None


class KeyUpdateBody(_Body):
    """PATCH /v1/admin/keys/{id}: the settings to change (absent: unchanged; null: cleared or reset)."""

    name: str | None = Field(default=None, min_length=1, max_length=MAX_NAME_CHARS)
    role: Role | None = None
    owner: str | None = Field(default=None, max_length=MAX_NAME_CHARS)
    rpm: Tokens | None = None
    tpm: Tokens | None = None
    budgets: BudgetsBody | None = None
    models: list[ModelName] | None = Field(default=None, max_length=MAX_MODELS)
    max_tokens: Tokens | None = None
    weight: StrictFloat | StrictInt | None = Field(default=None, gt=0, le=MAX_WEIGHT)
    priority: StrictInt | None = Field(default=None, ge=PRIORITY_RANGE[0], le=PRIORITY_RANGE[1])
    server_tools: StrictBool | None = None

    @field_validator("name", "role", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("cannot be null")
        return value

    def patch(self) -> KeyPatch:
        given = self.model_fields_set

        def cleared(name: str) -> Any:
            """The value to set (null: 0, which clears), or None for a field the body leaves out."""
            return (getattr(self, name) or 0) if name in given else None

        return KeyPatch(
            name=self.name,
            role=self.role,
            owner=(self.owner or "") if "owner" in given else None,
            rpm=cleared("rpm"),
            tpm=cleared("tpm"),
            budgets=self._budget_changes(),
            models=tuple(self.models or ()) if "models" in given else None,
            max_tokens=cleared("max_tokens"),
            weight=(float(self.weight) if self.weight is not None else 1.0) if "weight" in given else None,
            priority=(self.priority or 0) if "priority" in given else None,
            server_tools=bool(self.server_tools) if "server_tools" in given else None,
        )

    def _budget_changes(self) -> dict[str, int]:
        """The budgets the body sets (0: cleared); ``"budgets": null`` clears them all."""
        if "budgets" not in self.model_fields_set:
            return {}
        if self.budgets is None:
            return dict.fromkeys(BUDGET_NAMES, 0)
        return {name: getattr(self.budgets, name) or 0 for name in self.budgets.model_fields_set}


class KeyCreateBody(KeyUpdateBody):
    """POST /v1/admin/keys: a new key's name and settings (absent or null: the default)."""

    name: str = Field(min_length=1, max_length=MAX_NAME_CHARS)


# The body names every budget a key can have, no more.
assert tuple(BudgetsBody.model_fields) == BUDGET_NAMES, "BudgetsBody must list key_policy.Budgets' fields"
