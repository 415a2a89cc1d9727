"""A deterministic example value that validates against a JSON schema (for the sim engine).

Covers what tool parameter and structured-output schemas use in practice: types
(including type lists and ``null``), ``const``/``enum``, objects (every property,
required ones always, ``additionalProperties``, ``minProperties``), arrays
(``items``/``prefixItems``, ``minItems``/``maxItems``, ``uniqueItems``), string
length and common ``format`` values, numeric bounds (exclusive ones in both draft
styles) and ``multipleOf``, ``allOf``/``anyOf``/``oneOf`` and local ``$ref``.
``pattern`` is not generated from; a value is only guaranteed to validate for the
keywords above. A recursive ``$ref`` is followed while the value nests; beyond
``_MAX_OPTIONAL_DEPTH`` only required properties and ``minItems`` items are built,
and a schema whose values must nest deeper than ``_MAX_DEPTH`` (or whose ``$ref``
does not resolve) is ``UnsatisfiableSchema``, never another exception.
Pure functions, no I/O.
"""

from __future__ import annotations

import math
from typing import Any

from jsonschema import validators

Schema = dict[str, Any] | bool

_MAX_OPTIONAL_DEPTH = 4
# A value nested deeper than this (a recursive schema that requires itself) is not built.
_MAX_DEPTH = 64
_FORMAT_EXAMPLES = {
    "date-time": "2024-01-01T12:00:00Z",
    "date": "2024-01-01",
    "time": "12:00:00Z",
    "email": "user@example.com",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "hostname": "example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "uuid": "00000000-0000-4000-8000-000000000000",
}


class UnsatisfiableSchema(ValueError):
    """The schema admits no value this generator can build."""


def example_value(schema: Schema) -> Any:
    """A value that validates against ``schema`` (a parsed JSON schema)."""
    try:
        return _Generator(schema).value(schema, name="value", depth=0, variant=0)
    except RecursionError:  # combinators that refer back to themselves without nesting a value
        raise UnsatisfiableSchema("the schema refers back to itself without bound") from None


def is_valid(schema: Schema, value: Any) -> bool:
    """Whether ``value`` validates against ``schema`` (the draft its ``$schema`` names, else 2020-12)."""
    validator_class = validators.validator_for(schema) if isinstance(schema, dict) else validators.Draft202012Validator
    return validator_class(schema).is_valid(value)


class _Generator:
    def __init__(self, root: Schema) -> None:
        self.root = root

    def value(self, schema: Schema, *, name: str, depth: int, variant: int) -> Any:
        if schema is True or schema == {}:
            return f"{name} {variant}" if variant else name
        if schema is False:
            raise UnsatisfiableSchema(f"{name}: schema `false` admits nothing")
        if depth > _MAX_DEPTH:
            raise UnsatisfiableSchema(f"{name}: every value nests deeper than {_MAX_DEPTH} levels")
        schema = self._resolve(schema)
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            options = schema["enum"]
            if not options:
                raise UnsatisfiableSchema(f"{name}: empty enum")
            return options[variant % len(options)]
        if "allOf" in schema:
            return self.value(self._merge_all_of(schema), name=name, depth=depth, variant=variant)
        for combinator in ("oneOf", "anyOf"):
            if combinator in schema:
                return self._first_valid_option(schema, combinator, name=name, depth=depth, variant=variant)
        kind = _pick_type(schema)
        builder = getattr(self, f"_{kind}")
        return builder(schema, name=name, depth=depth, variant=variant)

    def _resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        seen = set()
        while "$ref" in schema:
            ref = schema["$ref"]
            if not ref.startswith("#") or ref in seen:
                raise UnsatisfiableSchema(f"unsupported or circular $ref {ref!r}")
            seen.add(ref)
            target = self._pointer_target(ref)
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**target, **rest} if isinstance(target, dict) else target
        return schema

    def _pointer_target(self, ref: str) -> Any:
        """What the local JSON pointer ``ref`` (``#/$defs/name``) points at in the root schema."""
        target: Any = self.root
        for part in filter(None, ref[1:].split("/")):
            key = part.replace("~1", "/").replace("~0", "~")
            if isinstance(target, dict) and key in target:
                target = target[key]
            elif isinstance(target, list) and key.isdigit() and int(key) < len(target):
                target = target[int(key)]
            else:
                raise UnsatisfiableSchema(f"$ref {ref[:200]!r} does not resolve")
        return target

    def _merge_all_of(self, schema: dict[str, Any]) -> dict[str, Any]:
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        for part in schema["allOf"]:
            part = self._resolve(part) if isinstance(part, dict) else {}
            for key, value in part.items():
                if key == "properties":
                    merged["properties"] = {**merged.get("properties", {}), **value}
                elif key == "required":
                    merged["required"] = sorted(set(merged.get("required", [])) | set(value))
                else:
                    merged.setdefault(key, value)
        return merged

    def _first_valid_option(
        self, schema: dict[str, Any], combinator: str, *, name: str, depth: int, variant: int
    ) -> Any:
        base = {k: v for k, v in schema.items() if k != combinator}
        for option in schema[combinator]:
            option = self._resolve(option) if isinstance(option, dict) else option
            candidate_schema = {**base, **option} if isinstance(option, dict) else option
            try:
                candidate = self.value(candidate_schema, name=name, depth=depth, variant=variant)
            except UnsatisfiableSchema:
                continue
            if is_valid({**self._root_defs(), **schema}, candidate):
                return candidate
        raise UnsatisfiableSchema(f"{name}: no {combinator} option could be satisfied")

    def _root_defs(self) -> dict[str, Any]:
        if not isinstance(self.root, dict):
            return {}
        return {key: self.root[key] for key in ("$defs", "definitions") if key in self.root}

    def _object(self, schema: dict[str, Any], *, name: str, depth: int, variant: int) -> dict[str, Any]:
        properties: dict[str, Schema] = schema.get("properties", {})
        required: list[str] = schema.get("required", [])
        keys = list(properties) if depth < _MAX_OPTIONAL_DEPTH else [k for k in properties if k in required]
        keys += [k for k in required if k not in keys]
        extra_schema = schema.get("additionalProperties", True)
        result: dict[str, Any] = {}
        for key in keys:
            sub = properties.get(key, extra_schema if extra_schema is not False else True)
            result[key] = self.value(sub, name=key, depth=depth + 1, variant=variant)
        max_properties = schema.get("maxProperties")
        if max_properties is not None and len(result) > max_properties:
            optional = [k for k in result if k not in required]
            for key in optional[: len(result) - max_properties]:
                del result[key]
        index = 0
        while len(result) < schema.get("minProperties", 0):
            if extra_schema is False:
                raise UnsatisfiableSchema(f"{name}: minProperties needs keys that additionalProperties forbids")
            key = f"extra_{index}"
            index += 1
            if key not in result:
                result[key] = self.value(extra_schema, name=key, depth=depth + 1, variant=variant)
        return result

    def _array(self, schema: dict[str, Any], *, name: str, depth: int, variant: int) -> list[Any]:
        prefix: list[Schema] = schema.get("prefixItems", [])
        items = schema.get("items", True)
        if isinstance(items, list):  # draft 4-7 tuple form
            prefix, items = items, schema.get("additionalItems", True)
        fewest = 1 if depth < _MAX_OPTIONAL_DEPTH else 0
        count = max(schema.get("minItems", 0), len(prefix), fewest)
        if "maxItems" in schema:
            count = min(count, schema["maxItems"])
        singular = name[:-1] if name.endswith("s") and len(name) > 1 else name
        result = []
        for index in range(count):
            item_schema = prefix[index] if index < len(prefix) else items
            result.append(self.value(item_schema, name=singular, depth=depth + 1, variant=variant + index))
        return result

    def _string(self, schema: dict[str, Any], *, name: str, depth: int, variant: int) -> str:
        text = _FORMAT_EXAMPLES.get(schema.get("format", ""), f"example {name}".replace("_", " "))
        if variant:
            text = f"{text} {variant}"
        min_length, max_length = schema.get("minLength", 0), schema.get("maxLength")
        if len(text) < min_length:
            text += "x" * (min_length - len(text))
        if max_length is not None and len(text) > max_length:
            text = text[:max_length] if variant == 0 else (text[-max_length:] if max_length else "")
        return text

    def _integer(self, schema: dict[str, Any], *, name: str, depth: int, variant: int) -> int:
        low, high = _bounds(schema, step=1)
        return int(_multiple_in_range(1 + variant, low, high, schema.get("multipleOf", 1), name=name))

    def _number(self, schema: dict[str, Any], *, name: str, depth: int, variant: int) -> float:
        low, high = _bounds(schema, step=None)
        if "multipleOf" in schema:
            return float(_multiple_in_range(1 + variant, low, high, schema["multipleOf"], name=name))
        if low is not None and high is not None:
            return low + (high - low) * (variant + 1) / (variant + 2)
        return float(_clamp(1.5 + variant, low, high))

    def _boolean(self, schema: dict[str, Any], *, name: str, depth: int, variant: int) -> bool:
        return variant % 2 == 0

    def _null(self, schema: dict[str, Any], *, name: str, depth: int, variant: int) -> None:
        return None


def _pick_type(schema: dict[str, Any]) -> str:
    declared = schema.get("type")
    if isinstance(declared, list):
        non_null = [t for t in declared if t != "null"]
        declared = non_null[0] if non_null else "null"
    if declared:
        return declared
    if "properties" in schema or "required" in schema or "additionalProperties" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    if any(k in schema for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")):
        return "number"
    return "string"


def _bounds(schema: dict[str, Any], step: float | None) -> tuple[float | None, float | None]:
    """Inclusive (low, high); an exclusive bound moves inward by ``step`` (integers) or stays open (numbers)."""
    low, high = schema.get("minimum"), schema.get("maximum")
    exclusive_low, exclusive_high = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    nudge = step if step is not None else 1e-6
    if exclusive_low is True and low is not None:  # draft 4
        low += nudge
    elif isinstance(exclusive_low, (int, float)) and not isinstance(exclusive_low, bool):
        low = exclusive_low + nudge if low is None else max(low, exclusive_low + nudge)
    if exclusive_high is True and high is not None:
        high -= nudge
    elif isinstance(exclusive_high, (int, float)) and not isinstance(exclusive_high, bool):
        high = exclusive_high - nudge if high is None else min(high, exclusive_high - nudge)
    if step is not None:
        low = math.ceil(low) if low is not None else None
        high = math.floor(high) if high is not None else None
    if low is not None and high is not None and low > high:
        raise UnsatisfiableSchema(f"empty range [{low}, {high}]")
    return low, high


def _multiple_in_range(start: float, low: float | None, high: float | None, step: float, *, name: str) -> float:
    value = math.ceil(_clamp(start, low, high) / step) * step
    if high is not None and value > high:
        value = math.floor(high / step) * step
    if low is not None and value < low:
        raise UnsatisfiableSchema(f"{name}: no multiple of {step} in [{low}, {high}]")
    return value


def _clamp(value: float, low: float | None, high: float | None) -> float:
    if low is not None:
        value = max(value, low)
    if high is not None:
        value = min(value, high)
    return value
