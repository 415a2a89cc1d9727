"""A JSON Schema of the Open Responses response resource and streaming events, and checks against it.

Written for these tests from the Open Responses specification (openresponses.org, its OpenAPI
document): the ``ResponseResource`` with every field the spec requires and its type, the output
items and content parts it holds, and the members of the streaming-event union with their
required fields. The SDK's types are lenient (every field optional, floats for timestamps);
this schema is not: a required field must be present, ``null`` only where the spec allows it,
and integers are integers (``1.0`` is not one).

Where the spec's revisions differ, this schema takes the stricter side or says which it follows:

- ``user`` is required (one revision lists it, the other leaves it optional);
- the json_schema text format's ``schema`` is an object (one revision's generated schema
  types it ``null``, a generator slip);
- reasoning text events are ``response.reasoning_text.delta`` / ``.done``, the name of the
  revision with JSON schemas per component and of OpenAI's API (the TypeSpec revision calls
  them ``response.reasoning.delta`` / ``.done``);
- ``reasoning.effort`` also allows ``minimal`` (the spec's enum descriptions name it).

``check_response(obj)`` and ``check_event(obj)`` raise ``AssertionError`` naming the path of
every violation; ``EVENT_TYPES`` is the union's members.
"""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator, validators

Schema = dict[str, Any]

# ---------------------------------------------------------------- building blocks

STRING: Schema = {"type": "string"}
INTEGER: Schema = {"type": "integer"}
NUMBER: Schema = {"type": "number"}
BOOLEAN: Schema = {"type": "boolean"}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def ref(name: str) -> Schema:
    return {"$ref": f"#/$defs/{name}"}


def array_of(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def obj(properties: dict[str, Schema], required: list[str] | None = None) -> Schema:
    """An object with these properties, all required unless ``required`` names fewer (extra fields allowed)."""
    return {"type": "object", "properties": properties,
            "required": list(properties) if required is None else required}


def tagged(tag: str, properties: dict[str, Schema], optional: tuple[str, ...] = ()) -> Schema:
    """An object whose ``type`` is ``tag``; its other properties required unless ``optional``."""
    fields = {"type": {"const": tag}, **properties}
    return obj(fields, [name for name in fields if name not in optional])


def one_of(*names: str) -> Schema:
    return {"oneOf": [ref(name) for name in names]}


ITEM_STATUS: Schema = {"enum": ["in_progress", "completed", "incomplete"]}

# ---------------------------------------------------------------- content parts

LOG_PROB_CORE = {"token": STRING, "logprob": NUMBER, "bytes": array_of(INTEGER)}

CONTENT_DEFS: dict[str, Schema] = {
    "InputText": tagged("input_text", {"text": STRING}),
    "OutputText": tagged("output_text", {"text": STRING, "annotations": array_of(ref("Annotation")),
                                         "logprobs": array_of(ref("LogProb"))}, optional=("logprobs",)),
    "Text": tagged("text", {"text": STRING}),
    "SummaryText": tagged("summary_text", {"text": STRING}),
    "ReasoningText": tagged("reasoning_text", {"text": STRING}),
    "Refusal": tagged("refusal", {"refusal": STRING}),
    "InputImage": tagged("input_image", {"image_url": nullable(STRING), "detail": {"enum": ["low", "high", "auto"]}}),
    "InputFile": tagged("input_file", {"filename": STRING, "file_url": STRING}, optional=("filename", "file_url")),
    "InputVideo": tagged("input_video", {"video_url": STRING}),
    "Annotation": tagged("url_citation", {"url": STRING, "start_index": INTEGER, "end_index": INTEGER,
                                          "title": STRING}),
    "TopLogProb": obj(LOG_PROB_CORE),
    "LogProb": obj({**LOG_PROB_CORE, "top_logprobs": array_of(ref("TopLogProb"))}),
    # What a message, a reasoning item or a content-part event may hold.
    "ContentPart": one_of("InputText", "OutputText", "Text", "SummaryText", "ReasoningText", "Refusal",
                          "InputImage", "InputFile", "InputVideo"),
    "ToolOutputPart": one_of("InputText", "InputImage", "InputFile"),
}

# ---------------------------------------------------------------- output items

ITEM_DEFS: dict[str, Schema] = {
    "Message": tagged("message", {
        "id": STRING, "status": ITEM_STATUS, "role": {"enum": ["user", "assistant", "system", "developer"]},
        "content": array_of(ref("ContentPart")), "phase": {"enum": ["commentary", "final_answer"]},
    }, optional=("phase",)),
    "FunctionCall": tagged("function_call", {
        "id": STRING, "call_id": STRING, "name": STRING, "arguments": STRING, "status": ITEM_STATUS,
    }),
    "FunctionCallOutput": tagged("function_call_output", {
        "id": STRING, "call_id": STRING, "status": ITEM_STATUS,
        "output": {"oneOf": [STRING, array_of(ref("ToolOutputPart"))]},
    }),
    "ReasoningItem": tagged("reasoning", {
        "id": STRING, "summary": array_of(ref("ContentPart")), "content": array_of(ref("ContentPart")),
        "encrypted_content": STRING,
    }, optional=("content", "encrypted_content")),
    "Compaction": tagged("compaction", {"id": STRING, "encrypted_content": STRING, "created_by": STRING},
                         optional=("created_by",)),
    "Item": one_of("Message", "FunctionCall", "FunctionCallOutput", "ReasoningItem", "Compaction"),
}

# ---------------------------------------------------------------- the response resource

TOOL_CHOICE_MODE: Schema = {"enum": ["none", "auto", "required"]}

RESOURCE_DEFS: dict[str, Schema] = {
    "FunctionTool": tagged("function", {
        "name": STRING, "description": nullable(STRING), "parameters": nullable({"type": "object"}),
        "strict": nullable(BOOLEAN),
    }),
    "FunctionToolChoice": tagged("function", {"name": STRING}, optional=("name",)),
    "AllowedToolChoice": tagged("allowed_tools", {"tools": array_of(ref("FunctionToolChoice")),
                                                  "mode": TOOL_CHOICE_MODE}),
    "ToolChoice": {"oneOf": [TOOL_CHOICE_MODE, ref("FunctionToolChoice"), ref("AllowedToolChoice")]},
    "TextFormat": {"oneOf": [
        tagged("text", {}),
        tagged("json_object", {}),
        tagged("json_schema", {"name": STRING, "description": nullable(STRING), "schema": {"type": "object"},
                               "strict": BOOLEAN}),
    ]},
    "TextField": obj({"format": ref("TextFormat"), "verbosity": {"enum": ["low", "medium", "high"]}}, ["format"]),
    "ReasoningConfig": obj({
        "effort": nullable({"enum": ["none", "minimal", "low", "medium", "high", "xhigh"]}),
        "summary": nullable({"enum": ["concise", "detailed", "auto"]}),
    }),
    "Usage": obj({
        "input_tokens": INTEGER, "output_tokens": INTEGER, "total_tokens": INTEGER,
        "input_tokens_details": obj({"cached_tokens": INTEGER}),
        "output_tokens_details": obj({"reasoning_tokens": INTEGER}),
    }),
    "ResponseResource": obj({
        "id": STRING,
        "object": {"const": "response"},
        "created_at": INTEGER,
        "completed_at": nullable(INTEGER),
        "status": STRING,
        "incomplete_details": nullable(obj({"reason": STRING})),
        "model": STRING,
        "previous_response_id": nullable(STRING),
        "instructions": {"anyOf": [STRING, {"type": "array"}, {"type": "null"}]},
        "output": array_of(ref("Item")),
        "error": nullable(obj({"code": STRING, "message": STRING})),
        "tools": array_of(ref("FunctionTool")),
        "tool_choice": ref("ToolChoice"),
        "truncation": {"enum": ["auto", "disabled"]},
        "parallel_tool_calls": BOOLEAN,
        "text": ref("TextField"),
        "top_p": NUMBER,
        "presence_penalty": NUMBER,
        "frequency_penalty": NUMBER,
        "top_logprobs": INTEGER,
        "temperature": NUMBER,
        "reasoning": nullable(ref("ReasoningConfig")),
        "user": nullable(STRING),
        "usage": nullable(ref("Usage")),
        "max_output_tokens": nullable(INTEGER),
        "max_tool_calls": nullable(INTEGER),
        "store": BOOLEAN,
        "background": BOOLEAN,
        "service_tier": STRING,
        "metadata": {"type": "object", "additionalProperties": STRING},
        "safety_identifier": nullable(STRING),
        "prompt_cache_key": nullable(STRING),
    }),
}

# ---------------------------------------------------------------- streaming events

SEQUENCE = {"sequence_number": INTEGER}
IN_ITEM = {**SEQUENCE, "item_id": STRING, "output_index": INTEGER}
IN_CONTENT = {**IN_ITEM, "content_index": INTEGER}
IN_SUMMARY = {**IN_ITEM, "summary_index": INTEGER}
OBFUSCATION = {"obfuscation": STRING}

EVENTS: dict[str, Schema] = {
    **{f"response.{state}": tagged(f"response.{state}", {**SEQUENCE, "response": ref("ResponseResource")})
       for state in ("created", "queued", "in_progress", "completed", "failed", "incomplete")},
    **{f"response.output_item.{step}": tagged(f"response.output_item.{step}", {
        **SEQUENCE, "output_index": INTEGER, "item": nullable(ref("Item"))}) for step in ("added", "done")},
    **{f"response.content_part.{step}": tagged(f"response.content_part.{step}", {
        **IN_CONTENT, "part": ref("ContentPart")}) for step in ("added", "done")},
    **{f"response.reasoning_summary_part.{step}": tagged(f"response.reasoning_summary_part.{step}", {
        **IN_SUMMARY, "part": ref("ContentPart")}) for step in ("added", "done")},
    "response.output_text.delta": tagged("response.output_text.delta", {
        **IN_CONTENT, "delta": STRING, "logprobs": array_of(ref("LogProb")), **OBFUSCATION,
    }, optional=("logprobs", "obfuscation")),
    "response.output_text.done": tagged("response.output_text.done", {
        **IN_CONTENT, "text": STRING, "logprobs": array_of(ref("LogProb"))}, optional=("logprobs",)),
    "response.refusal.delta": tagged("response.refusal.delta", {**IN_CONTENT, "delta": STRING}),
    "response.refusal.done": tagged("response.refusal.done", {**IN_CONTENT, "refusal": STRING}),
    "response.reasoning_text.delta": tagged("response.reasoning_text.delta", {
        **IN_CONTENT, "delta": STRING, **OBFUSCATION}, optional=("obfuscation",)),
    "response.reasoning_text.done": tagged("response.reasoning_text.done", {**IN_CONTENT, "text": STRING}),
    "response.reasoning_summary_text.delta": tagged("response.reasoning_summary_text.delta", {
        **IN_SUMMARY, "delta": STRING, **OBFUSCATION}, optional=("obfuscation",)),
    "response.reasoning_summary_text.done": tagged("response.reasoning_summary_text.done", {
        **IN_SUMMARY, "text": STRING}),
    "response.output_text.annotation.added": tagged("response.output_text.annotation.added", {
        **IN_CONTENT, "annotation_index": INTEGER, "annotation": nullable(ref("Annotation"))}),
    "response.function_call_arguments.delta": tagged("response.function_call_arguments.delta", {
        **IN_ITEM, "delta": STRING, **OBFUSCATION}, optional=("obfuscation",)),
    "response.function_call_arguments.done": tagged("response.function_call_arguments.done", {
        **IN_ITEM, "arguments": STRING}),
    "error": tagged("error", {**SEQUENCE, "error": obj({
        "type": STRING, "code": nullable(STRING), "message": STRING, "param": nullable(STRING),
        "headers": {"type": "object", "additionalProperties": STRING},
    }, ["type", "code", "message", "param"])}),
}

EVENT_TYPES = frozenset(EVENTS)

DEFS: dict[str, Schema] = {
    **CONTENT_DEFS, **ITEM_DEFS, **RESOURCE_DEFS,
    **{f"event:{name}": schema for name, schema in EVENTS.items()},
    "StreamingEvent": {"oneOf": [ref(f"event:{name}") for name in EVENTS]},
}
assert len(DEFS) == len(CONTENT_DEFS) + len(ITEM_DEFS) + len(RESOURCE_DEFS) + len(EVENTS) + 1, "a name is defined twice"
SCHEMA: Schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$defs": DEFS}

# ---------------------------------------------------------------- checks

# Integers are ints: JSON Schema's default checker also takes 1.0 (and the SDK parses floats).
_STRICT = validators.extend(
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _checker, value: isinstance(value, int) and not isinstance(value, bool)),
)
Draft202012Validator.check_schema(SCHEMA)


def _validator(definition: str) -> Draft202012Validator:
    return _STRICT({"$ref": f"#/$defs/{definition}", "$defs": SCHEMA["$defs"]})


_RESPONSE = _validator("ResponseResource")
_EVENTS = {name: _validator(f"event:{name}") for name in EVENTS}


def _check(validator: Draft202012Validator, instance: Any, what: str) -> None:
    problems = [f"{'/'.join(map(str, error.absolute_path)) or '(root)'}: {error.message}"
                for error in validator.iter_errors(instance)]
    assert not problems, f"{what} is not valid Open Responses:\n" + "\n".join(problems)


def check_response(response: Any) -> None:
    """``response`` (a JSON object) is a valid ``ResponseResource``."""
    _check(_RESPONSE, response, "response")


def check_event(event: Any) -> None:
    """``event`` (a JSON object) is a member of the streaming-event union and valid as that member."""
    kind = event.get("type") if isinstance(event, dict) else None
    assert kind in EVENT_TYPES, f"event type {kind!r} is not in the Open Responses streaming-event union"
    _check(_EVENTS[kind], event, f"event {kind} #{event.get('sequence_number')}")
