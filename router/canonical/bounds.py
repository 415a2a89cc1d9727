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

JSON a client nests (tool and response-format schemas, tool-call arguments objects: ``check_depth``; the
extra fields a wire model keeps and stores: ``NestedJson``) is bounded to ``MAX_JSON_DEPTH`` levels of
objects and arrays: deep enough for any real schema (32 levels of nested object properties), below what
re-encoding it (orjson and pydantic stop at 255, a stored response read back at ~195) or checking it against
its metaschema (jsonschema recurses several frames per level) can take. Only these values are walked (a
walk of a whole request body would cost more than the router's per-request budget).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, Field

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
    """Whether ``value`` (decoded JSON) nests objects and arrays more than ``limit`` levels deep. It recurses
    at most ``limit`` levels, whatever the value's depth."""
    kind = type(value)
    if kind is not dict and kind is not list:
        return False
    if limit == 0:
        return True
    children = value.values() if kind is dict else value
    return any(json_depth_exceeds(child, limit - 1) for child in children if type(child) in _CONTAINERS)


_CONTAINERS = (dict, list)


def check_depth(value: Any, param: str, limit: int = MAX_JSON_DEPTH) -> None:
    """A 400 naming ``param`` when ``value`` nests deeper than ``limit`` levels."""
    if json_depth_exceeds(value, limit):
        raise invalid_request(f"{param} nests objects and arrays more than {limit} levels deep", param)



def _within_depth(value: Any) -> Any:
    if json_depth_exceeds(value, MAX_JSON_DEPTH):
        raise ValueError(f"nests objects and arrays more than {MAX_JSON_DEPTH} levels deep")
    return value


# Any JSON a wire model keeps as it came (extra fields, annotations) and later re-encodes: at most MAX_JSON_DEPTH
# levels deep (a validation error at its own path otherwise).
NestedJson = Annotated[Any, AfterValidator(_within_depth)]
