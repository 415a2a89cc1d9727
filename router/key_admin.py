"""Changing API keys with an audit trail: what the admin API (``router/admin``) and ``fleetgate keys`` both call.

``KeyAdmin`` creates, updates, revokes and rotates keys in the ``KeyStore``
(``router/auth.py``) and appends one entry per change to the ``AuditLog``
(``router/audit.py``) saying who, what (the settings before and after, never a
secret or hash), when and from where. ``KeyPatch`` is a change of settings, as
both the CLI's options and the API's PATCH body express it; ``key_view`` is a key
as the API answers it (and ``keys list --format json`` prints it).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from redis.exceptions import RedisError

from fleetgate.router.audit import Actor, AuditEntry, AuditLog, iso_time
from fleetgate.router.auth import KeyInfo, KeyStore, changed_limits
from fleetgate.router.key_policy import Budgets, Role

log = logging.getLogger("fleetgate.router.audit")

# The budgets a patch may set, by their Budgets field names: day_tokens, day_input_tokens, ... month_output_tokens.
BUDGET_NAMES = tuple(f.name for f in fields(Budgets))


@dataclass(frozen=True)
class KeyPatch:
    """Settings to change; None leaves a setting as it is. 0 clears ``rpm`` / ``tpm`` (back to the router's
    default), ``max_tokens`` and a budget (no cap); ``""`` clears the owner, ``()`` the model allowlist (all
    models); ``server_tools`` is True (on) or False (off)."""

    name: str | None = None
    rpm: int | None = None
    tpm: int | None = None
    role: Role | None = None
    owner: str | None = None
    # Budgets field name (BUDGET_NAMES) -> tokens.
    budgets: Mapping[str, int] = field(default_factory=dict)
    models: tuple[str, ...] | None = None
    max_tokens: int | None = None
    weight: float | None = None
    priority: int | None = None
    server_tools: bool | None = None

    def applied(self, key: KeyInfo) -> KeyInfo:
        """``key`` with these changes (unvalidated: ``KeyStore`` validates what it writes)."""
        unknown = sorted(set(self.budgets) - set(BUDGET_NAMES))
        if unknown:
            raise ValueError(f"unknown budget {unknown[0]!r}: one of {', '.join(BUDGET_NAMES)}")
        policy = key.policy
        budgets = replace(policy.budgets, **{name: tokens or None for name, tokens in self.budgets.items()})
        policy = replace(
            policy,
            role=policy.role if self.role is None else self.role,
            owner=policy.owner if self.owner is None else self.owner,
            budgets=budgets,
            models=policy.models if self.models is None else self.models,
            max_tokens=policy.max_tokens if self.max_tokens is None else (self.max_tokens or None),
            weight=policy.weight if self.weight is None else self.weight,
            priority=policy.priority if self.priority is None else self.priority,
            server_tools=policy.server_tools if self.server_tools is None else self.server_tools,
        )
        limits = changed_limits(key.limits, requests=self.rpm, tokens=self.tpm)
        return replace(key, name=key.name if self.name is None else self.name, limits=limits, policy=policy)


def _unix(timestamp: float | None) -> int | None:
    return None if timestamp is None else int(timestamp)


def key_settings(key: KeyInfo) -> dict[str, Any]:
    """A key's settings as the API shows them (and a PATCH body changes them)."""
    policy = key.policy
    return {
        "name": key.name, "role": policy.role, "owner": policy.owner, "rpm": key.limits.requests,
        "tpm": key.limits.tokens, "budgets": {name: getattr(policy.budgets, name) for name in BUDGET_NAMES},
        "models": list(policy.models), "max_tokens": policy.max_tokens, "weight": policy.weight,
        "priority": policy.priority, "server_tools": policy.server_tools,
    }


def key_view(key: KeyInfo) -> dict[str, Any]:
    """A key as the admin API answers it: id, settings, times (Unix seconds); never its secret or hash."""
    return {
        "object": "api_key", "id": key.id, **key_settings(key), "created_at": _unix(key.created_at),
        "revoked": key.revoked, "revoked_at": _unix(key.revoked_at), "rotated_at": _unix(key.rotated_at),
    }


def _flat(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Settings with the budgets as ``budgets.<name>`` entries."""
    out = {k: v for k, v in settings.items() if k != "budgets"}
    out.update({f"budgets.{name}": tokens for name, tokens in settings["budgets"].items()})
    return out


def settings_changes(before: KeyInfo | None, after: KeyInfo) -> dict[str, list[Any]]:
    """``{setting: [before, after]}`` of the settings that differ; with no ``before`` (a new key), the
    settings that differ from a new key's defaults, and its name, each from None."""
    new = _flat(key_settings(after))
    if before is None:
        defaults = _flat(key_settings(KeyInfo(id="", name="", created_at=0, revoked=False)))
        return {k: [None, v] for k, v in new.items() if v != defaults[k]}
    old = _flat(key_settings(before))
    return {k: [old[k], v] for k, v in new.items() if old[k] != v}


class KeyAdmin:
    """Key changes, each recorded in the audit log (see the module docstring)."""

    def __init__(self, keys: KeyStore, audit: AuditLog) -> None:
        self.keys = keys
        self.audit = audit

    async def _record(self, actor: Actor, action: str, key: KeyInfo, changes: dict[str, list[Any]]) -> None:
        entry = AuditEntry(actor=actor, action=action, target=key.id, target_name=key.name, changes=changes)
        try:
            await self.audit.append(entry)
        except (RedisError, OSError) as exc:
            # The change is made: answering an error would make the client repeat it. The log keeps the entry.
            log.error("could not append to the audit log (%s): %s", exc, entry.fields())

    async def create(self, actor: Actor, name: str, patch: KeyPatch | None = None) -> tuple[str, KeyInfo]:
        """A new key with ``patch``'s settings: ``(secret, info)``. ValueError for a bad setting or a taken name."""
        draft = (patch or KeyPatch()).applied(KeyInfo(id="", name=name, created_at=0, revoked=False))
        secret, info = await self.keys.create(draft.name, draft.limits, draft.policy)
        await self._record(actor, "key.create", info, settings_changes(None, info))
        return secret, info

    async def update(self, actor: Actor, id_or_name: str, patch: KeyPatch) -> tuple[KeyInfo, KeyInfo]:
        """The key before and after ``patch``. KeyLookupError for an unknown key, ValueError for a bad setting."""
        before, after = await self.keys.update(id_or_name, patch.applied)
        await self._record(actor, "key.update", after, settings_changes(before, after))
        return before, after

    async def revoke(self, actor: Actor, id_or_name: str) -> KeyInfo:
        """The key, revoked (already revoked: unchanged, still recorded). KeyLookupError for an unknown key."""
        before = await self.keys.find(id_or_name, "revoke")
        after = await self.keys.revoke(before.id)
        changes = {} if before.revoked else {"revoked": [False, True]}
        await self._record(actor, "key.revoke", after, changes)
        return after

    async def rotate(self, actor: Actor, id_or_name: str) -> tuple[str, KeyInfo]:
        """A new secret for the key: ``(secret, info)``. KeyLookupError for an unknown key, KeyRevokedError for a
        revoked one."""
        before = await self.keys.find(id_or_name, "rotate")
        secret, after = await self.keys.rotate(before.id)
        when = [iso_time(t) if t is not None else None for t in (before.rotated_at, after.rotated_at)]
        await self._record(actor, "key.rotate", after, {"rotated_at": when})
        return secret, after

    async def bootstrap(self, secret: str) -> tuple[KeyInfo | None, str]:
        """Register the deployment's bootstrap key as an admin key (``KeyStore.register_bootstrap``); a
        registration or promotion is recorded, with this router as the actor."""
        info, outcome = await self.keys.register_bootstrap(secret)
        if info is not None and outcome == "registered":
            await self._record(Actor.router(), "key.bootstrap", info, settings_changes(None, info))
        elif info is not None and outcome == "made admin":
            await self._record(Actor.router(), "key.bootstrap", info, {"role": ["user", "admin"]})
        return info, outcome
