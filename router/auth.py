"""API keys: creation, update, rotation, revocation, listing, and per-request authentication.

Keys look like ``sk-fg-<43 random url-safe chars>``. Only their SHA-256 is
stored; the secret is shown once (by ``fleetgate keys create`` / ``rotate``, or
the admin API's create / rotate answer) and never again.

Redis keys (no TTL: a key lives until it is revoked, and a revoked key stays
listed so its id keeps meaning something):

- ``fleetgate:apikey:<sha256 hex>``: hash ``{id, name, created_at, revoked,
  revoked_at}``, plus ``rotated_at`` once the key was rotated, ``rpm`` / ``tpm``
  when the key has its own rate limits (``router.rate_limit``), plus the key's
  policy fields (role, owner, budgets, model allowlist, ``max_tokens`` cap,
  fair-share weight, priority: ``router.key_policy``). One ``HGETALL``
  authenticates a request, so revocation, rotation, limit and policy changes take
  effect at once on every router.
- ``fleetgate:apikey-id:<key id>``: the sha256 hex of that key, to find it by id.

Creating a key writes its record whole and its id index in one Lua script.
Updating one is a ``WATCH`` / ``MULTI`` over its record that writes only the
fields that change (two admins changing different settings of a key at once
both win). Rotating one is a Lua script that moves the record to the new
secret's hash (``RENAME``) and points the id index at it: from that moment the
old secret is unknown (401) and the new one works, with the same id and settings.

Clients send the key as ``Authorization: Bearer <key>`` or ``x-api-key: <key>``
on every ``/v1`` route unless ``router.auth`` is false. The caller's key id (never
the key or its hash) travels to the replica in ``GenerateRequest.caller.key_id``
and owns stored Responses objects.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, replace

import redis.asyncio as aioredis
from redis.exceptions import WatchError
from starlette.requests import HTTPConnection

from fleetgate.router.errors import authentication_failed
from fleetgate.router.key_policy import POLICY_FIELDS, KeyPolicy
from fleetgate.router.rate_limit import Limits

KEY_SECRET_PREFIX = "sk-fg-"
KEY_RECORD_PREFIX = "fleetgate:apikey:"
KEY_ID_PREFIX = "fleetgate:apikey-id:"
BOOTSTRAP_KEY_NAME = "bootstrap"
# Fields of a key's record holding its own rate limits (absent: the router's defaults).
LIMIT_FIELDS = {"requests": "rpm", "tokens": "tpm"}
# The record's fields a key's settings write (name, own limits, policy); an update touches only these.
SETTING_FIELDS = ("name", *LIMIT_FIELDS.values(), *POLICY_FIELDS)
DEFAULT_POLICY = KeyPolicy()
# Attempts of an update or rotation that met a concurrent change of the same key: each failed attempt means
# another change of it succeeded, so this many changes of one key at the same moment all succeed.
CONCURRENT_ATTEMPTS = 50

# Atomically create the record (ARGV[5..]: more field / value pairs) and its id index, unless the key hash
# is already registered.
_REGISTER_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'name', ARGV[2], 'created_at', ARGV[3], 'revoked', '0', 'revoked_at', '')
for i = 5, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('SET', KEYS[2], ARGV[4])
return 1
"""

# Move a key's record to a new secret's hash and point its id index there.
# KEYS: old record, new record, id index. ARGV: old digest, new digest, rotated_at.
# The moved record (HGETALL's field / value list) once rotated; 0 the index no longer names the old record (a
# concurrent rotation); -1 revoked; -2 the new hash is taken.
_ROTATE_SCRIPT = """
if redis.call('GET', KEYS[3]) ~= ARGV[1] or redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HGET', KEYS[1], 'revoked') == '1' then return -1 end
if redis.call('EXISTS', KEYS[2]) == 1 then return -2 end
redis.call('RENAME', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[2], 'rotated_at', ARGV[3])
redis.call('SET', KEYS[3], ARGV[2])
return redis.call('HGETALL', KEYS[2])
"""


@dataclass(frozen=True)
class KeyInfo:
    id: str
    name: str
    created_at: float
    revoked: bool
    revoked_at: float | None = None
    # The key's own rate limits; None fields follow the router's defaults.
    limits: Limits = Limits()
    policy: KeyPolicy = KeyPolicy()
    rotated_at: float | None = None


@dataclass(frozen=True)
class Caller:
    """Who is calling: the authenticated key, or anonymous when auth is off (no role: the admin API needs auth)."""

    key_id: str = ""
    key_name: str = ""
    limits: Limits = Limits()
    policy: KeyPolicy = KeyPolicy()


ANONYMOUS = Caller()


class KeyLookupError(LookupError):
    """No key matches, or a name matches more than one active key."""


class NameTakenError(ValueError):
    """Another active key has this name."""


class KeyRevokedError(ValueError):
    """The key is revoked: it cannot be rotated."""


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return KEY_SECRET_PREFIX + secrets.token_urlsafe(32)


def new_key_id() -> str:
    return "key_" + secrets.token_hex(8)


def _text(value: bytes | str) -> str:
    """A Redis reply as text (the router's clients return bytes)."""
    return value.decode() if isinstance(value, bytes) else value


def _timestamp(value: str | None) -> float | None:
    return float(value) if value else None


def _decode(record: Mapping[bytes | str, bytes | str]) -> KeyInfo:
    fields = {_text(k): _text(v) for k, v in record.items()}
    own = {name: int(fields[field]) for name, field in LIMIT_FIELDS.items() if fields.get(field)}
    return KeyInfo(
        id=fields["id"],
        name=fields.get("name", ""),
        created_at=float(fields.get("created_at") or 0),
        revoked=fields.get("revoked") == "1",
        revoked_at=_timestamp(fields.get("revoked_at")),
        limits=Limits(**own),
        policy=KeyPolicy.from_fields(fields),
        rotated_at=_timestamp(fields.get("rotated_at")),
    )


def setting_fields(name: str, limits: Limits, policy: KeyPolicy) -> dict[str, str]:
    """The record fields of a key's settings (what is absent takes its default)."""
    own = {field: str(value) for attr, field in LIMIT_FIELDS.items() if (value := getattr(limits, attr)) is not None}
    return {"name": name, **own, **policy.to_fields()}


def validated_settings(info: KeyInfo) -> KeyInfo:
    """``info``, or a ValueError naming the first setting out of range."""
    if not info.name:
        raise ValueError("a key needs a name")
    for attr, field in LIMIT_FIELDS.items():
        value = getattr(info.limits, attr)
        if value is not None and value < 1:
            raise ValueError(f"{field} must be a positive number (or cleared), got {value}")
    info.policy.validated()
    return info


class KeyStore:
    """API keys in Redis (see the module docstring for the schema)."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self._register = redis.register_script(_REGISTER_SCRIPT)
        self._rotate = redis.register_script(_ROTATE_SCRIPT)

    async def register(
        self, secret: str, name: str, *, limits: Limits = Limits(), policy: KeyPolicy = DEFAULT_POLICY
    ) -> KeyInfo | None:
        """Store ``secret`` under ``name`` with these settings; None when that secret is already registered
        (idempotent)."""
        digest = hash_secret(secret)
        key_id = new_key_id()
        extra = {k: v for k, v in setting_fields(name, limits, policy).items() if k != "name"}
        created = await self._register(
            keys=[KEY_RECORD_PREFIX + digest, KEY_ID_PREFIX + key_id],
            args=[key_id, name, repr(time.time()), digest, *(item for pair in extra.items() for item in pair)],
        )
        if not created:
            return None
        return await self.lookup(secret)

    async def register_bootstrap(self, secret: str) -> tuple[KeyInfo | None, str]:
        """The deployment's bootstrap key, an admin key named ``bootstrap``: ``(info, what happened)``, one of
        ``registered``, ``made admin`` (registered by an earlier version as a user key), ``already registered``.
        A revoked bootstrap key stays revoked."""
        info = await self.register(secret, BOOTSTRAP_KEY_NAME, policy=KeyPolicy(role="admin"))
        if info is not None:
            return info, "registered"
        record = KEY_RECORD_PREFIX + hash_secret(secret)
        role = await self.redis.hget(record, "role")
        if role is None or _text(role) != "admin":
            await self.redis.hset(record, "role", "admin")
            return await self.lookup(secret), "made admin"
        return await self.lookup(secret), "already registered"

    async def create(
        self, name: str, limits: Limits = Limits(), policy: KeyPolicy = DEFAULT_POLICY
    ) -> tuple[str, KeyInfo]:
        """A new key named ``name`` (unique among active keys) with its own ``limits`` and ``policy``:
        ``(secret, info)``; the secret is not stored. A ValueError for a setting out of range."""
        validated_settings(KeyInfo(id="", name=name, created_at=0, revoked=False, limits=limits, policy=policy))
        await self._check_name_free(name)
        secret = new_secret()
        info = await self.register(secret, name, limits=limits, policy=policy)
        assert info is not None, "a fresh random key cannot already exist"
        return secret, info

    async def _check_name_free(self, name: str, *, other_than: str = "") -> None:
        if any(k.name == name and not k.revoked and k.id != other_than for k in await self.list()):
            raise NameTakenError(f"an active key named {name!r} already exists")

    async def lookup(self, secret: str) -> KeyInfo | None:
        """The key's record (revoked or not), or None for an unknown key."""
        record = await self.redis.hgetall(KEY_RECORD_PREFIX + hash_secret(secret))
        return _decode(record) if record else None

    async def get(self, key_id: str) -> KeyInfo | None:
        """The key with this id (revoked or not), or None."""
        found = await self._by_id(key_id)
        return found[0] if found else None

    async def _by_id(self, key_id: str) -> tuple[KeyInfo, str] | None:
        """The key with this id and its record's Redis key, or None. A record gone between reading the id
        index and the record was rotated meanwhile: the index is read again."""
        for _ in range(CONCURRENT_ATTEMPTS):
            digest = await self.redis.get(KEY_ID_PREFIX + key_id)
            if digest is None:
                return None
            record = KEY_RECORD_PREFIX + _text(digest)
            found = await self.redis.hgetall(record)
            if found:
                return _decode(found), record
        return None

    async def list(self) -> list[KeyInfo]:
        """Every key, oldest first."""
        digests = [v async for v in self._digests()]
        if not digests:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for digest in digests:
                pipe.hgetall(KEY_RECORD_PREFIX + digest)
            records = await pipe.execute()
        return sorted((_decode(r) for r in records if r), key=lambda k: k.created_at)

    async def _digests(self) -> AsyncIterator[str]:
        async for key in self.redis.scan_iter(match=KEY_ID_PREFIX + "*", count=500):
            digest = await self.redis.get(key)
            if digest:
                yield _text(digest)

    async def find(self, id_or_name: str, action: str = "name it") -> KeyInfo:
        """The key with this id, or the one active key with this name; a KeyLookupError otherwise (``action``
        completes its message when several active keys have the name)."""
        return (await self._find(id_or_name, action))[0]

    async def _record_of(self, key_id: str) -> str:
        """The Redis key of the record of the key with this id (a KeyLookupError when there is none)."""
        digest = await self.redis.get(KEY_ID_PREFIX + key_id)
        if digest is None:
            raise KeyLookupError(f"no key with id {key_id!r}")
        return KEY_RECORD_PREFIX + _text(digest)

    async def _find(self, id_or_name: str, action: str) -> tuple[KeyInfo, str]:
        """The key with this id, or the one active key with this name, and its record's Redis key."""
        by_id = await self._by_id(id_or_name)
        if by_id is not None:
            return by_id
        matches = [k for k in await self.list() if k.name == id_or_name and not k.revoked]
        if not matches:
            raise KeyLookupError(f"no key with id or active name {id_or_name!r}")
        if len(matches) > 1:
            raise KeyLookupError(f"{len(matches)} active keys are named {id_or_name!r}: {action} by id")
        return await self._find(matches[0].id, action)

    async def revoke(self, id_or_name: str) -> KeyInfo:
        """Revoke a key by id, or by the name of exactly one active key. Idempotent for ids."""
        key, record = await self._find(id_or_name, "revoke")
        revoked_at = time.time()
        if not key.revoked:
            await self.redis.hset(record, mapping={"revoked": "1", "revoked_at": repr(revoked_at)})
            key = replace(key, revoked=True, revoked_at=revoked_at)
        return key

    async def update(self, id_or_name: str, change: Callable[[KeyInfo], KeyInfo]) -> tuple[KeyInfo, KeyInfo]:
        """Apply ``change`` to a key's settings (name, own limits, policy; by id or active name), atomically:
        ``(before, after)``. Only the record fields that differ are written, under ``WATCH``, so a concurrent
        change of the same key is re-read and ``change`` applied again. A ValueError for a setting out of
        range or a name another active key has; a KeyLookupError for an unknown key."""
        key_id = (await self.find(id_or_name, "update")).id
        for _ in range(CONCURRENT_ATTEMPTS):
            record = await self._record_of(key_id)
            async with self.redis.pipeline(transaction=True) as pipe:
                await pipe.watch(record)
                current = await pipe.hgetall(record)
                if not current:
                    continue  # rotated meanwhile: find it again
                before = _decode(current)
                after = validated_settings(change(before))
                if after.name != before.name:
                    await self._check_name_free(after.name, other_than=before.id)
                old = setting_fields(before.name, before.limits, before.policy)
                new = setting_fields(after.name, after.limits, after.policy)
                pipe.multi()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
                for field, value in new.items():
                    if old.get(field) != value:
                        pipe.hset(record, field, value)
                gone = [field for field in old if field not in new]
                if gone:
                    pipe.hdel(record, *gone)
                pipe.hgetall(record)
                try:
                    *_, stored = await pipe.execute()
                except WatchError:
                    continue
            return before, _decode(stored)
        raise KeyLookupError(f"key {id_or_name!r} kept changing while being updated: try again")

    async def set_limits(self, id_or_name: str, *, requests: int | None = None, tokens: int | None = None) -> KeyInfo:
        """Set a key's own requests / tokens per window limits (by id or active name): None leaves one as
        it is, 0 clears it (the key follows the router's default again)."""
        if any(value is not None and value < 0 for value in (requests, tokens)):
            raise ValueError("a rate limit is a positive number, or 0 to clear it")

        def change(key: KeyInfo) -> KeyInfo:
            return replace(key, limits=changed_limits(key.limits, requests=requests, tokens=tokens))

        return (await self.update(id_or_name, change))[1]

    async def set_policy(self, id_or_name: str, policy: KeyPolicy) -> KeyInfo:
        """Replace a key's policy whole (by id or active name); a ValueError for a field out of range."""
        policy.validated()
        return (await self.update(id_or_name, lambda key: replace(key, policy=policy)))[1]

    async def rotate(self, id_or_name: str) -> tuple[str, KeyInfo]:
        """A new secret for a key (by id or active name), same id and settings: ``(secret, info)``. The old
        secret stops working at once. A KeyRevokedError for a revoked key."""
        key_id = (await self.find(id_or_name, "rotate")).id
        for _ in range(CONCURRENT_ATTEMPTS):
            record = await self._record_of(key_id)
            secret = new_secret()
            digest = hash_secret(secret)
            old_digest = record.removeprefix(KEY_RECORD_PREFIX)
            outcome = await self._rotate(
                keys=[record, KEY_RECORD_PREFIX + digest, KEY_ID_PREFIX + key_id],
                args=[old_digest, digest, repr(time.time())],
            )
            if outcome == -1:
                raise KeyRevokedError(f"key {key_id} is revoked: a revoked key cannot be rotated")
            if isinstance(outcome, list):
                return secret, _decode(dict(zip(outcome[::2], outcome[1::2], strict=True)))
        raise KeyLookupError(f"key {id_or_name!r} kept changing while being rotated: try again")


def changed_limits(limits: Limits, *, requests: int | None = None, tokens: int | None = None) -> Limits:
    """``limits`` with ``requests`` / ``tokens`` set: None leaves one as it is, 0 clears it."""
    return Limits(
        limits.requests if requests is None else (requests or None),
        limits.tokens if tokens is None else (tokens or None),
    )


def presented_key(request: HTTPConnection) -> str | None:
    """The key from ``Authorization: Bearer`` or ``x-api-key``, if any."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    api_key = request.headers.get("x-api-key")
    return api_key.strip() if api_key and api_key.strip() else None


async def authenticate(request: HTTPConnection, keys: KeyStore, *, required: bool) -> Caller:
    """The caller of ``request``; a 401 ApiError for a missing, unknown or revoked key when auth is required."""
    if not required:
        return ANONYMOUS
    secret = presented_key(request)
    if secret is None:
        raise authentication_failed("Missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'")
    info = await keys.lookup(secret)
    if info is None:
        raise authentication_failed("Invalid API key")
    if info.revoked:
        raise authentication_failed("This API key has been revoked")
    return Caller(key_id=info.id, key_name=info.name, limits=info.limits, policy=info.policy)
