"""The bounds validation enforces for every dialect: numbers the canonical proto can hold and JSON nesting
depth (pure).

The wire models (``router/dialects/*/protocol.py``) type every field that lands in a proto integer or float
with the shared field types below, so an out-of-range value is a 400 naming the field at validation, never
a protobuf ``ValueError`` (a 500) when the canonical request is built:

- ``TokenLimit``: ``Sampling.max_tokens`` (int32): ``max_tokens``, ``max_completion_tokens``,
  ``max_output_tokens``;
- ``TopK``: ``Sampling.top_k`` (int32), above its dialect's own lower bound;
- ``Seed``: ``Sampling.seed`` (int64);
- ``Float32``: a proto float without a tighter bound of its own (``repetition_penalty``).

JSON a client nests (tool and response-format schemas, tool-call arguments objects) is bounded to
``MAX_JSON_DEPTH`` levels of objects and arrays (``check_depth``): deep enough for any real schema (32
levels of nested object properties), below what re-encoding it (orjson stops at 255) or checking it
against its metaschema (jsonschema recurses several frames per level) can take.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from fleetgate.router.errors import invalid_request

INT32_MAX = 2**31 - 1
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
FLOAT32_MAX = 3.4028234663852886e38

TokenLimit = Annotated[int, Field(ge=1, le=INT32_MAX)]
TopK = Annotated[int, Field(le=INT32_MAX)]
Seed = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]
Float32 = Annotated[float, Field(ge=-FLOAT32_MAX, le=FLOAT32_MAX)]

# Objects and arrays nested in each other: `{"a": [1]}` is 2 levels.
MAX_JSON_DEPTH = 64


def json_depth_exceeds(value: Any, limit: int) -> bool:
    """Whether ``value`` (decoded JSON) nests objects and arrays more than ``limit`` levels deep (iterative: a
    value of any depth is measured without recursion)."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        node, depth = pending.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def check_depth(value: Any, param: str, limit: int = MAX_JSON_DEPTH) -> None:
    """A 400 naming ``param`` when ``value`` nests deeper than ``limit`` levels."""
    if json_depth_exceeds(value, limit):
        raise invalid_request(f"{param} nests objects and arrays more than {limit} levels deep", param)

