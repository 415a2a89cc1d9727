"""The caller's session, from the first session hint its request carries (pure).

Coding agents resend their whole conversation each turn and say which session a
turn belongs to in one of several ways; the routing policy pins a session to the
replica whose KV cache holds it (``RoutingFacts.session``). In order of
precedence:

1. the ``x-session-id`` header (any client, fleetgate's own);
2. ``prompt_cache_key`` (Responses and Chat: Codex sends its conversation id);
3. the ``X-Claude-Code-Session-Id`` header (Claude Code);
4. Anthropic ``metadata.user_id`` (Claude Code puts its session id in it);
5. ``safety_identifier`` (Responses and Chat);
6. ``user`` (the OpenAI dialects).

The hint is namespaced by where it came from (``session:…``, ``cache_key:…``,
``claude_code:…``, ``anthropic_user:…``, ``safety:…``, ``user:…``), so a user id
and a session id with the same text never name one session. Values up to
``MAX_VALUE_CHARS`` are kept as sent; a longer one is replaced by its SHA-256
(``<namespace>#<hex>``: the ``#`` keeps a digest from colliding with a value
sent as is), so a hint's length is bounded whatever the client sends.

Each dialect reads its own wire model into ``SessionFields``
(``Dialect.session_fields``); the pipeline's translate step adds the headers
(``router.pipeline.parse``) and sets ``ctx.session_hint``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

# Header names, lower case (Starlette's headers are looked up case-insensitively).
SESSION_ID_HEADER = "x-session-id"
CLAUDE_CODE_SESSION_HEADER = "x-claude-code-session-id"

# Longer values are hashed.
MAX_VALUE_CHARS = 64


@dataclass(frozen=True)
class SessionFields:
    """The body fields of a request that may name its session (None: the dialect has no such field, or it was
    not sent)."""

    prompt_cache_key: str | None = None
    anthropic_user_id: str | None = None
    safety_identifier: str | None = None
    user: str | None = None


NO_SESSION_FIELDS = SessionFields()


def bounded(namespace: str, value: str) -> str:
    """``namespace:value``, or ``namespace#<sha256 of value>`` for a value longer than ``MAX_VALUE_CHARS``."""
    if len(value) <= MAX_VALUE_CHARS:
        return f"{namespace}:{value}"
    return f"{namespace}#{hashlib.sha256(value.encode()).hexdigest()}"


def session_hint(headers: Mapping[str, str], fields: SessionFields) -> str | None:
    """The request's session hint (see the module docstring), or None when it carries none.

    ``headers`` must look names up case-insensitively (Starlette's ``Headers``); empty values count as absent.
    """
    candidates = (
        ("session", headers.get(SESSION_ID_HEADER)),
        ("cache_key", fields.prompt_cache_key),
        ("claude_code", headers.get(CLAUDE_CODE_SESSION_HEADER)),
        ("anthropic_user", fields.anthropic_user_id),
        ("safety", fields.safety_identifier),
        ("user", fields.user),
    )
    for namespace, value in candidates:
        if value:
            return bounded(namespace, value)
    return None
