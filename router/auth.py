"""API keys: creation, listing, revocation, and per-request authentication.

Keys look like ``sk-fg-<43 random url-safe chars>``. Only their SHA-256 is
stored; the secret is printed once by ``fleetgate keys create`` and never again.

Redis keys (no TTL: a key lives until it is revoked, and a revoked key stays
listed so its id keeps meaning something):

- ``fleetgate:apikey:<sha256 hex>``: hash ``{id, name, created_at, revoked,
  revoked_at}``, plus ``rpm`` / ``tpm`` when the key has its own rate limits
  (``router.rate_limit``), plus the key's policy fields (role, owner, budgets, model
  allowlist, ``max_tokens`` cap, fair-share weight, priority: ``router.key_policy``).
  One ``HGETALL`` authenticates a request, so revocation, limit and policy changes
  take effect at once on every router.
- ``fleetgate:apikey-id:<key id>``: the sha256 hex of that key, to revoke and list by id.

Clients send the key as ``Authorization: Bearer <key>`` or ``x-api-key: <key>``
on every ``/v1`` route unless ``router.auth`` is false. The caller's key id (never
the key or its hash) travels to the replica in ``GenerateRequest.caller.key_id``
and owns stored Responses objects.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace

import redis.asyncio as aioredis
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

# Atomically create the record and its id index unless the key hash is already registered.
_REGISTER_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'name', ARGV[2], 'created_at', ARGV[3], 'revoked', '0', 'revoked_at', '')
redis.call('SET', KEYS[2], ARGV[4])
return 1
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


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return KEY_SECRET_PREFIX + secrets.token_urlsafe(32)


def new_key_id() -> str:
    return "key_" + secrets.token_hex(8)


def _text(value: bytes | str) -> str:
    """A Redis reply as text (the router's clients return bytes)."""
    return value.decode() if isinstance(value, bytes) else value


def _decode(record: Mapping[bytes | str, bytes | str]) -> KeyInfo:
    fields = {_text(k): _text(v) for k, v in record.items()}
    revoked_at = fields.get("revoked_at") or ""
    own = {name: int(fields[field]) for name, field in LIMIT_FIELDS.items() if fields.get(field)}
    return KeyInfo(
        id=fields["id"],
        name=fields.get("name", ""),
        created_at=float(fields.get("created_at") or 0),
        revoked=fields.get("revoked") == "1",
        revoked_at=float(revoked_at) if revoked_at else None,
        limits=Limits(**own),
        policy=KeyPolicy.from_fields(fields),
    )


class KeyStore:
    """API keys in Redis (see the module docstring for the schema)."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self._register = redis.register_script(_REGISTER_SCRIPT)

    async def register(self, secret: str, name: str) -> KeyInfo | None:
        """Store ``secret`` under ``name``; None when that secret is already registered (idempotent)."""
        digest = hash_secret(secret)
        key_id = new_key_id()
        created = await self._register(
            keys=[KEY_RECORD_PREFIX + digest, KEY_ID_PREFIX + key_id], args=[key_id, name, repr(time.time()), digest]
        )
        if not created:
            return None
        return await self.lookup(secret)

    async def create(self, name: str, limits: Limits = Limits()) -> tuple[str, KeyInfo]:
        """A new key named ``name`` (unique among active keys), with its own ``limits`` if any:
        ``(secret, info)``; the secret is not stored."""
        if not name:
            raise ValueError("a key needs a name")
        if any(k.name == name and not k.revoked for k in await self.list()):
            raise ValueError(f"an active key named {name!r} already exists")
        secret = new_secret()
        info = await self.register(secret, name)
        assert info is not None, "a fresh random key cannot already exist"
        if not limits.unlimited:
            info = await self.set_limits(info.id, requests=limits.requests, tokens=limits.tokens)
        return secret, info

    async def lookup(self, secret: str) -> KeyInfo | None:
        """The key's record (revoked or not), or None for an unknown key."""
        record = await self.redis.hgetall(KEY_RECORD_PREFIX + hash_secret(secret))
        return _decode(record) if record else None

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

    async def _find(self, id_or_name: str, action: str) -> tuple[KeyInfo, str]:
        """The key with this id, or the one active key with this name, and its record's Redis key."""
        keys = await self.list()
        matches = [k for k in keys if k.id == id_or_name]
        if not matches:
            matches = [k for k in keys if k.name == id_or_name and not k.revoked]
        if not matches:
            raise KeyLookupError(f"no key with id or active name {id_or_name!r}")
        if len(matches) > 1:
            raise KeyLookupError(f"{len(matches)} active keys are named {id_or_name!r}: {action} by id")
        key = matches[0]
        digest = await self.redis.get(KEY_ID_PREFIX + key.id)
        if digest is None:
            raise KeyLookupError(f"key {key.id} vanished")
        return key, KEY_RECORD_PREFIX + _text(digest)

    async def revoke(self, id_or_name: str) -> KeyInfo:
        """Revoke a key by id, or by the name of exactly one active key. Idempotent for ids."""
        key, record = await self._find(id_or_name, "revoke")
        revoked_at = time.time()
        if not key.revoked:
            await self.redis.hset(record, mapping={"revoked": "1", "revoked_at": repr(revoked_at)})
            key = replace(key, revoked=True, revoked_at=revoked_at)
        return key

    async def set_limits(self, id_or_name: str, *, requests: int | None = None, tokens: int | None = None) -> KeyInfo:
        """Set a key's own requests / tokens per window limits (by id or active name): None leaves one as
        it is, 0 clears it (the key follows the router's default again)."""
        key, record = await self._find(id_or_name, "limit")
        wanted = {"requests": requests, "tokens": tokens}
        changes = {LIMIT_FIELDS[name]: value for name, value in wanted.items() if value is not None}
        if any(value < 0 for value in changes.values()):
            raise ValueError("a rate limit is a positive number, or 0 to clear it")
        async with self.redis.pipeline(transaction=True) as pipe:
            for field, value in changes.items():
                if value:
                    pipe.hset(record, field, str(value))
                else:
                    pipe.hdel(record, field)
            pipe.hgetall(record)
            *_, stored = await pipe.execute()
        return _decode(stored)

    async def set_policy(self, id_or_name: str, policy: KeyPolicy) -> KeyInfo:
        """Replace a key's policy whole (by id or active name); a ValueError for a field out of range."""
        policy.validated()
        key, record = await self._find(id_or_name, "update")
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hdel(record, *POLICY_FIELDS)
            for field, value in policy.to_fields().items():
                pipe.hset(record, field, value)
            pipe.hgetall(record)
            *_, stored = await pipe.execute()
        return _decode(stored)


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
