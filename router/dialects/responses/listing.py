"""``GET /v1/responses/{id}/input_items``: one page of a stored conversation (pure).

OpenAI's cursor list: ``{"object": "list", "data", "first_id", "last_id",
"has_more"}``, newest first by default (``order=desc``), ``limit`` 1..100
(default 20), ``after`` = the id of the item the page starts after.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from fleetgate.router.errors import echoed, invalid_request

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


def item_page(
    items: Sequence[dict[str, Any]], *, limit: int = DEFAULT_LIMIT, order: Literal["asc", "desc"] = "desc",
    after: str | None = None,
) -> dict[str, Any]:
    if not 1 <= limit <= MAX_LIMIT:
        raise invalid_request(f"limit must be between 1 and {MAX_LIMIT}", "limit")
    ordered = list(items) if order == "asc" else list(reversed(items))
    if after is not None:
        ids = [item.get("id") for item in ordered]
        if after not in ids:
            raise invalid_request(f"after: no item {echoed(after)} in this response's input", "after")
        ordered = ordered[ids.index(after) + 1:]
    page = ordered[:limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": len(ordered) > limit,
    }
