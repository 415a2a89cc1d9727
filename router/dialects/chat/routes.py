"""HTTP route of the Chat Completions dialect."""

from __future__ import annotations

from fastapi import Request
from starlette.responses import Response

from fleetgate.router.dialects.chat.dialect import CHAT
from fleetgate.router.error_responses import dialect_router
from fleetgate.router.pipeline import runner

routes = dialect_router(CHAT)


@routes.post("/v1/chat/completions")
async def create_chat_completion(request: Request) -> Response:
    return await runner.serve(request, CHAT)
