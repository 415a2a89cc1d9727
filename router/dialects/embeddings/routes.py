"""HTTP route of the Embeddings dialect (errors in OpenAI's shape)."""

from __future__ import annotations

from fastapi import Request
from starlette.responses import Response

from fleetgate.router.dialects.embeddings.dialect import EMBEDDINGS
from fleetgate.router.error_responses import dialect_router
from fleetgate.router.pipeline import runner

routes = dialect_router(EMBEDDINGS)


@routes.post("/v1/embeddings")
async def create_embeddings(request: Request) -> Response:
    return await runner.embed(request, EMBEDDINGS)
