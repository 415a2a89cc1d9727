"""Identifier generators: the router's request id and every dialect's public ids.

One random request id per request (also the canonical ``request_id`` sent to the
replica, so logs on both sides correlate); each dialect derives its public object
id from it with its own prefix, so the id is stable across all chunks of a stream.
Tool-call ids follow the scheme router and replicas share (``fleetgate.core.tool_call_ids``).
"""

from __future__ import annotations

import secrets
import string

_ALPHABET = string.ascii_letters + string.digits
_RANDOM_LENGTH = 24


def random_token(length: int = _RANDOM_LENGTH) -> str:
    """URL-safe letters and digits (about 5.95 bits each), uniform, from one read of the OS random source.

    (``secrets.choice`` per character costs one ``getrandom`` syscall each.)
    """
    value = secrets.randbelow(len(_ALPHABET) ** length)
    chars = []
    for _ in range(length):
        value, index = divmod(value, len(_ALPHABET))
        chars.append(_ALPHABET[index])
    return "".join(chars)


def new_request_id() -> str:
    return random_token()


def chat_completion_id(request_id: str) -> str:
    return f"chatcmpl-{request_id}"


def text_completion_id(request_id: str) -> str:
    return f"cmpl-{request_id}"


def message_id(request_id: str) -> str:
    return f"msg_{request_id}"


def response_id(request_id: str) -> str:
    return f"resp_{request_id}"


def new_item_id(prefix: str) -> str:
    """A fresh id for a dialect object such as a Responses output item (``msg_``, ``rs_``, ``fc_``)."""
    return prefix + random_token()
