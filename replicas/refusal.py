"""Refusing a request before generation, shared by the engines.

A ``Refusal`` carries an ``ErrorCode`` and a message; the engine turns it into
the stream's only event, a ``finish`` with reason ERROR (nothing was generated,
so a router may answer with a clean error or retry elsewhere).
``parse_json_schema`` reads a JSON schema the request carries (a response
format's or a tool's parameters) and refuses one that is not a JSON object.
"""

from __future__ import annotations

import json
from typing import Any

from fleetgate.core.events import ErrorCode


class Refusal(Exception):
    """The request is refused before generation; becomes the stream's only event (an error finish)."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def parse_json_schema(text: str, what: str) -> dict[str, Any]:
    """The JSON object in ``text``; ``what`` names it in the refusal (e.g. "response_format schema")."""
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as exc:
        raise Refusal(ErrorCode.ERROR_CODE_INVALID_REQUEST, f"{what} is not valid JSON: {exc}") from None
    if not isinstance(schema, dict):
        raise Refusal(ErrorCode.ERROR_CODE_INVALID_REQUEST, f"{what} must be a JSON object")
    return schema
