"""The ``signature`` of the thinking blocks fleetgate returns.

Anthropic signs thinking so a client cannot alter it before sending it back. A
fleetgate model's reasoning is plain text the client already sees, and whatever a
client replays in its history is prompt input it controls anyway, so there is
nothing secret to protect and no router secret to share between routers.

The signature is therefore an opaque, stable marker: ``"fg1:"`` followed by the
unpadded URL-safe base64 SHA-256 digest of the thinking text. It is non-empty (the
SDK and coding agents require one), deterministic (stream and non-stream agree,
any router produces the same one), and it is not verified: thinking blocks in the
request history are accepted with any signature and replayed as reasoning.
"""

from __future__ import annotations

import base64
import hashlib

SIGNATURE_PREFIX = "fg1:"


def thinking_signature(thinking: str) -> str:
    digest = hashlib.sha256(thinking.encode()).digest()
    return SIGNATURE_PREFIX + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
