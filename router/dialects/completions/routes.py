"""HTTP route of the Completions dialect."""

from __future__ import annotations

from fastapi import Request
from starlette.responses import Response

from fleetgate.router.dialects.completions.dialect import COMPLETIONS
from fleetgate.router.error_responses import dialect_router
from fleetgate.router.pipeline import runner

routes = dialect_router(COMPLETIONS)


@routes.post("/v1/completions")
async def create_completion(request: Request) -> Response:
    return await runner.serve(request, COMPLETIONS)
