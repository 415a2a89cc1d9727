"""Sealed content: text the router gives a client encrypted and authenticated, and takes back intact.

A ``store: false`` client keeps the conversation itself, so what the model thought
(a reasoning item's ``encrypted_content``) and what ``/v1/responses/compact``
summarised (a ``compaction`` item) travel through the client and come back in a
later request. They are sealed with AES-256-GCM under the deployment's secret: any
router of the deployment opens what another sealed, a client can neither read nor
change them, and nothing sealed for one API key or for one purpose opens for
another (both are the authenticated data). A token is ``fg1.`` + base64url(nonce ‖
ciphertext ‖ tag).

The key comes from ``router.sealing_secret`` (every router of a deployment must
have the same one; the Helm chart keeps it in a Secret). Without one, the first
router to need a key draws one and keeps it in Redis (``fleetgate:secret:sealing``,
no TTL), where every router of the deployment finds it.
"""

from __future__ import annotations

import base64
import os

import redis.asyncio as aioredis
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PREFIX = "fg1."
REDIS_KEY = "fleetgate:secret:sealing"
_NONCE_BYTES = 12
_KEY_BYTES = 32
_KDF_INFO = b"fleetgate sealed content v1"

REASONING = "reasoning"
COMPACTION = "compaction"


class SealBroken(ValueError):
    """The token was not sealed by this deployment for this key and purpose, or it was changed."""


def key_from_secret(secret: str | bytes) -> bytes:
    """The AES-256 key a deployment secret stands for (HKDF-SHA256: any secret length gives one key)."""
    material = secret.encode() if isinstance(secret, str) else secret
    return HKDF(algorithm=hashes.SHA256(), length=_KEY_BYTES, salt=None, info=_KDF_INFO).derive(material)


class Sealer:
    """Seals and opens text for one API key."""

    def __init__(self, key: bytes, owner: str) -> None:
        self._aead = AESGCM(key)
        self._owner = owner

    def _associated(self, purpose: str) -> bytes:
        return f"fleetgate:{purpose}:{self._owner}".encode()

    def seal(self, purpose: str, text: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, text.encode(), self._associated(purpose))
        return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")

    def open(self, purpose: str, token: str) -> str:
        if not token.startswith(PREFIX):
            raise SealBroken("not sealed by fleetgate")
        body = token[len(PREFIX):]
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except ValueError as exc:
            raise SealBroken("not valid base64url") from exc
        if len(raw) <= _NONCE_BYTES:
            raise SealBroken("too short")
        try:
            return self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], self._associated(purpose)).decode()
        except (InvalidTag, UnicodeDecodeError) as exc:
            raise SealBroken("changed, or sealed for another key or deployment") from exc


async def deployment_key(secret: str | None, redis: aioredis.Redis) -> bytes:
    """The deployment's sealing key: from ``secret``, else the one kept in Redis (drawn by the first router)."""
    if secret:
        return key_from_secret(secret)
    drawn = base64.b64encode(os.urandom(_KEY_BYTES))
    await redis.set(REDIS_KEY, drawn, nx=True)
    kept = await redis.get(REDIS_KEY)
    return key_from_secret(base64.b64decode(kept if kept is not None else drawn))
