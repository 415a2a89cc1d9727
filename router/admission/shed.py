"""A shed request's answer in its dialect's terms: OpenAI APIs 429 ``overloaded_error``, Anthropic 529.

Both carry ``Retry-After`` (``router.admission.retry_after_seconds``). The
Messages API's own overload status is 529 with ``overloaded_error``; OpenAI has
none, so its APIs answer 429 (what its SDKs back off on) whose ``type`` and
``code`` say the server, not the key's limit, is the cause.
"""

from __future__ import annotations

from typing import Any

from fleetgate.router.admission.queue import Shed
from fleetgate.router.dialects.messages.shape import AnthropicShape
from fleetgate.router.errors import ApiError, ErrorKind

OPENAI_OVERLOADED_STATUS = 429
ANTHROPIC_OVERLOADED_STATUS = 529
OVERLOADED_TYPE = "overloaded_error"
OVERLOADED_CODE = "overloaded"


def shed_error(shed: Shed, dialect: Any, retry_after_seconds: int) -> ApiError:
    status = ANTHROPIC_OVERLOADED_STATUS if isinstance(dialect, AnthropicShape) else OPENAI_OVERLOADED_STATUS
    return ApiError(status, ErrorKind.OVERLOADED, shed.message, retry_after=retry_after_seconds,
                    code=OVERLOADED_CODE, openai_type=OVERLOADED_TYPE)
