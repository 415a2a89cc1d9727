"""HTTP routes of the Anthropic Messages dialect.

``POST /v1/messages`` and ``POST /v1/messages/count_tokens``, both through the
shared runner (auth by ``x-api-key`` or Bearer, body limit). Errors are in
Anthropic's shape: the routes are the Messages dialect's, and so is every other
path under ``PATH_SPACE``. The ``anthropic-version`` and ``anthropic-beta``
headers and the SDK's ``?beta=true`` query are accepted and need nothing.
"""

from __future__ import annotations

from fastapi import Request
from starlette.responses import Response

from fleetgate.router.dialects.messages.dialect import COUNT_TOKENS, MESSAGES
from fleetgate.router.dialects.messages.response import count_tokens_body
from fleetgate.router.error_responses import dialect_router
from fleetgate.router.http_io import json_response
from fleetgate.router.pipeline import runner

# Every path under it answers in Anthropic's shape, an unknown one too.
PATH_SPACE = "/v1/messages"

routes = dialect_router(MESSAGES)


@routes.post(PATH_SPACE)
async def create_message(request: Request) -> Response:
    return await runner.serve(request, MESSAGES)


@routes.post(f"{PATH_SPACE}/count_tokens")
async def count_message_tokens(request: Request) -> Response:
    return json_response(count_tokens_body(await runner.count_prompt_tokens(request, COUNT_TOKENS)))
