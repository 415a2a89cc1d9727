"""Sim tool-call arguments and JSON output: example values validate against the schemas clients send."""

from __future__ import annotations

import jsonschema
import pytest

from fleetgate.replicas.sim_engine.schema_values import UnsatisfiableSchema, example_value
from fleetgate.replicas.stop_sequences import StopMatcher

SCHEMAS = {
    "empty": {},
    "true": True,
    "enum": {"type": "string", "enum": ["a", "b"]},
    "const": {"const": 42},
    "nullable": {"type": ["null", "integer"], "minimum": 3},
    "integer bounds": {"type": "integer", "exclusiveMinimum": 10, "maximum": 12, "multipleOf": 2},
    "draft4 exclusive": {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "type": "integer",
        "minimum": 5,
        "exclusiveMinimum": True,
    },
    "number range": {"type": "number", "minimum": -2.5, "maximum": -1.0},
    "number multiple": {"type": "number", "multipleOf": 0.25, "minimum": 0.3},
    "string length": {"type": "string", "minLength": 40, "maxLength": 41},
    "short string": {"type": "string", "maxLength": 3},
    "formats": {
        "type": "object",
        "properties": {
            f: {"type": "string", "format": f} for f in ("date-time", "date", "email", "uri", "uuid", "ipv4")
        },
        "required": ["date-time", "date", "email", "uri", "uuid", "ipv4"],
    },
    "unique array": {"type": "array", "items": {"type": "integer", "maximum": 100}, "minItems": 5, "uniqueItems": True},
    "unique enum array": {"type": "array", "items": {"enum": ["x", "y", "z"]}, "minItems": 3, "uniqueItems": True},
    "tuple": {"type": "array", "prefixItems": [{"type": "string"}, {"type": "boolean"}], "items": False},
    "closed object": {
        "type": "object",
        "properties": {
            "a": {"type": "string"},
            "b": {"type": "object", "properties": {"c": {"type": "array", "items": {"type": "number"}}}},
        },
        "required": ["b"],
        "additionalProperties": False,
    },
    "min properties": {"type": "object", "additionalProperties": {"type": "integer"}, "minProperties": 2},
    "refs": {
        "type": "object",
        "properties": {"home": {"$ref": "#/$defs/address"}, "work": {"$ref": "#/definitions/address"}},
        "required": ["home", "work"],
        "$defs": {
            "address": {
                "type": "object",
                "properties": {"zip": {"type": "string", "minLength": 5}},
                "required": ["zip"],
            }
        },
        "definitions": {"address": {"$ref": "#/$defs/address"}},
    },
    "oneOf": {"oneOf": [{"type": "string", "maxLength": 2}, {"type": "integer"}]},
    "anyOf": {
        "anyOf": [{"type": "null"}, {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}]
    },
    "allOf": {"allOf": [{"type": "object", "properties": {"x": {"type": "integer"}}}, {"required": ["x", "y"]}]},
    "recursive": {
        "type": "object",
        "properties": {"name": {"type": "string"}, "children": {"type": "array", "items": {"$ref": "#"}}},
        "required": ["name"],
    },
}


@pytest.mark.parametrize("schema", SCHEMAS.values(), ids=SCHEMAS.keys())
def test_example_value_validates(schema):
    jsonschema.validate(example_value(schema), schema)


def test_impossible_range_is_reported():
    with pytest.raises(UnsatisfiableSchema):
        example_value({"type": "integer", "minimum": 5, "maximum": 4})


def test_stop_matcher_holds_back_a_possible_stop_and_cuts_at_the_match():
    matcher = StopMatcher(["</answer>", "END"])
    assert matcher.feed("The answer is 4 <") == ("The answer is 4 ", None)
    assert matcher.feed("/ans") == ("", None)
    assert matcher.feed("wer> and more") == ("", "</answer>")


def test_stop_matcher_releases_what_turned_out_not_to_be_a_stop():
    matcher = StopMatcher(["END"])
    assert matcher.feed("THE EN") == ("THE ", None)
    assert matcher.feed("D? no, ENTER") == ("", "END")
    other = StopMatcher(["END"])
    assert other.feed("EN") == ("", None)
    assert other.feed("TRY") == ("ENTRY", None)
    assert other.flush() == ""
