"""HTTP route of the Completions dialect."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from fleetgate.router.pipeline import runner
from fleetgate.router.dialects.completions.dialect import COMPLETIONS

routes = APIRouter()


@routes.post("/v1/completions")
async def create_completion(request: Request) -> Response:
    return await runner.serve(request, COMPLETIONS)
