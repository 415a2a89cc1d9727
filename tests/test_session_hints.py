"""Session hints (router/canonical/session_hints.py, pure) and the translate step that sets ``ctx.session_hint``
for every dialect from its headers and body (router/pipeline/parse.py)."""

from __future__ import annotations

import asyncio
import dataclasses
from types import SimpleNamespace
from typing import Any

import pytest
from starlette.datastructures import Headers
from starlette.requests import Request

from fleetgate.core.config import RouterConfig
from fleetgate.router.canonical.session_hints import MAX_VALUE_CHARS, SessionFields, session_hint
from fleetgate.router.dialects.base import Dialect
from fleetgate.router.dialects.chat.dialect import CHAT
from fleetgate.router.dialects.completions.dialect import COMPLETIONS
from fleetgate.router.dialects.messages.dialect import COUNT_TOKENS, MESSAGES
from fleetgate.router.dialects.responses.dialect import RESPONSES
from fleetgate.router.pipeline.context import RequestContext
from fleetgate.router.pipeline.parse import translate
from fleetgate.router.registry_view import Capabilities

NO_HEADERS = Headers({})
EVERY_FIELD = SessionFields(prompt_cache_key="key-1", anthropic_user_id="anthropic-1", safety_identifier="safe-1",
                            user="user-1")
BOTH_HEADERS = Headers({"X-Session-Id": "sess-1", "X-Claude-Code-Session-Id": "cc-1"})


@pytest.mark.parametrize(("headers", "fields", "expected"), [
    (Headers({"x-session-id": "s"}), SessionFields(), "session:s"),
    (NO_HEADERS, SessionFields(prompt_cache_key="k"), "cache_key:k"),
    (Headers({"X-Claude-Code-Session-Id": "1c5e"}), SessionFields(), "claude_code:1c5e"),
    (NO_HEADERS, SessionFields(anthropic_user_id="u"), "anthropic_user:u"),
    (NO_HEADERS, SessionFields(safety_identifier="h"), "safety:h"),
    (NO_HEADERS, SessionFields(user="alice"), "user:alice"),
])
def test_each_hint_yields_its_namespaced_session(headers: Headers, fields: SessionFields, expected: str) -> None:
    assert session_hint(headers, fields) == expected


def test_no_hint_is_no_session_and_empty_values_are_absent() -> None:
    assert session_hint(NO_HEADERS, SessionFields()) is None
    assert session_hint(Headers({"x-session-id": ""}), SessionFields(prompt_cache_key="", user="bob")) == "user:bob"


def test_precedence_header_first_then_the_documented_order() -> None:
    assert session_hint(BOTH_HEADERS, EVERY_FIELD) == "session:sess-1"
    # The explicit header beats every body field; prompt_cache_key beats Claude Code's header.
    assert session_hint(Headers({"x-session-id": "sess-1"}), EVERY_FIELD) == "session:sess-1"
    only_cc = Headers({"X-Claude-Code-Session-Id": "cc-1"})
    assert session_hint(only_cc, EVERY_FIELD) == "cache_key:key-1"
    assert session_hint(only_cc, SessionFields(anthropic_user_id="anthropic-1", user="u")) == "claude_code:cc-1"
    order = ["anthropic_user:anthropic-1", "safety:safe-1", "user:user-1"]
    fields = SessionFields(anthropic_user_id="anthropic-1", safety_identifier="safe-1", user="user-1")
    seen = []
    for drop in ("anthropic_user_id", "safety_identifier", "user"):
        seen.append(session_hint(NO_HEADERS, fields))
        fields = dataclasses.replace(fields, **{drop: None})
    assert seen == order
    assert session_hint(NO_HEADERS, fields) is None


def test_namespaces_keep_a_user_and_a_session_with_the_same_text_apart() -> None:
    same = "abc"
    hints = {session_hint(Headers({"x-session-id": same}), SessionFields()),
             session_hint(NO_HEADERS, SessionFields(user=same)),
             session_hint(NO_HEADERS, SessionFields(safety_identifier=same)),
             session_hint(NO_HEADERS, SessionFields(prompt_cache_key=same))}
    assert len(hints) == 4


def test_long_values_are_hashed_to_a_bounded_hint() -> None:
    exact = "x" * MAX_VALUE_CHARS
    assert session_hint(NO_HEADERS, SessionFields(user=exact)) == f"user:{exact}"
    long_a = session_hint(NO_HEADERS, SessionFields(user="y" * 100_000))
    long_b = session_hint(NO_HEADERS, SessionFields(user="y" * 99_999 + "z"))
    assert long_a is not None and long_b is not None
    assert long_a.startswith("user#") and len(long_a) == len("user#") + 64
    assert long_a != long_b
    assert long_a == session_hint(NO_HEADERS, SessionFields(user="y" * 100_000))


# ---------------------------------------------------------------- the translate step, per dialect

MODEL = "hint-model"
MESSAGES_BODY: dict[str, Any] = {"model": MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
CHAT_BODY: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
RESPONSES_BODY: dict[str, Any] = {"model": MODEL, "input": "hi"}
COMPLETIONS_BODY: dict[str, Any] = {"model": MODEL, "prompt": "hi"}
CLAUDE_CODE_USER_ID = '{"device_id":"cdf04b93","account_uuid":"","session_id":"1c5ecaee-737f-456c-b454-b21d1b6f145b"}'


def _state() -> Any:
    view = SimpleNamespace(capabilities=Capabilities())
    return SimpleNamespace(config=SimpleNamespace(router=RouterConfig()),
                           registry=SimpleNamespace(model=lambda name: view))


def _http(headers: dict[str, str]) -> Request:
    raw = [(name.lower().encode(), value.encode()) for name, value in headers.items()]
    return Request({"type": "http", "method": "POST", "path": "/", "headers": raw})


def translated_hint(dialect: Dialect[Any], body: dict[str, Any], headers: dict[str, str] | None = None) -> str | None:
    ctx = RequestContext(dialect=dialect, request_id="req-1", http=_http(headers or {}))
    ctx.parsed = dialect.parse(body)
    ctx.model = MODEL
    asyncio.run(translate(ctx, _state()))
    assert ctx.request is not None
    return ctx.session_hint


def test_messages_hint_is_metadata_user_id_and_claude_codes_header_beats_it() -> None:
    body = {**MESSAGES_BODY, "metadata": {"user_id": "u-1"}}
    assert translated_hint(MESSAGES, body) == "anthropic_user:u-1"
    assert translated_hint(MESSAGES, MESSAGES_BODY) is None
    # Claude Code sends both: the header wins; its user_id (a JSON object with the session in it) is hashed.
    claude_code = {**MESSAGES_BODY, "metadata": {"user_id": CLAUDE_CODE_USER_ID}}
    header = {"X-Claude-Code-Session-Id": "1c5ecaee"}
    assert translated_hint(MESSAGES, claude_code, header) == "claude_code:1c5ecaee"
    assert translated_hint(MESSAGES, claude_code, {"x-session-id": "mine"}) == "session:mine"
    hashed = translated_hint(MESSAGES, claude_code)
    assert hashed is not None and hashed.startswith("anthropic_user#")
    assert translated_hint(COUNT_TOKENS, {"model": MODEL, "messages": MESSAGES_BODY["messages"]}, header) \
        == "claude_code:1c5ecaee"


def test_chat_hints_prompt_cache_key_then_safety_identifier_then_user() -> None:
    assert translated_hint(CHAT, {**CHAT_BODY, "prompt_cache_key": "k", "safety_identifier": "s", "user": "u"}) \
        == "cache_key:k"
    assert translated_hint(CHAT, {**CHAT_BODY, "safety_identifier": "s", "user": "u"}) == "safety:s"
    assert translated_hint(CHAT, {**CHAT_BODY, "user": "u"}) == "user:u"
    assert translated_hint(CHAT, {**CHAT_BODY, "user": "u"}, {"x-session-id": "h"}) == "session:h"
    assert translated_hint(CHAT, CHAT_BODY) is None


def test_responses_hints_prompt_cache_key_then_safety_identifier_then_user() -> None:
    assert translated_hint(RESPONSES, {**RESPONSES_BODY, "prompt_cache_key": "codex-conv", "user": "u"}) \
        == "cache_key:codex-conv"
    assert translated_hint(RESPONSES, {**RESPONSES_BODY, "safety_identifier": "s", "user": "u"}) == "safety:s"
    assert translated_hint(RESPONSES, {**RESPONSES_BODY, "user": "u"}) == "user:u"
    assert translated_hint(RESPONSES, {**RESPONSES_BODY, "prompt_cache_key": "k"}, {"x-session-id": "h"}) \
        == "session:h"
    assert translated_hint(RESPONSES, RESPONSES_BODY) is None


def test_completions_hint_is_user_or_the_header() -> None:
    assert translated_hint(COMPLETIONS, {**COMPLETIONS_BODY, "user": "u"}) == "user:u"
    assert translated_hint(COMPLETIONS, COMPLETIONS_BODY, {"x-session-id": "h"}) == "session:h"
    assert translated_hint(COMPLETIONS, COMPLETIONS_BODY) is None


def test_a_call_without_an_http_request_takes_its_body_hints() -> None:
    """A Responses WebSocket create runs translate with no HTTP request of its own."""
    ctx = RequestContext(dialect=RESPONSES, request_id="req-1")
    ctx.parsed = RESPONSES.parse({**RESPONSES_BODY, "prompt_cache_key": "k"})
    ctx.model = MODEL
    asyncio.run(translate(ctx, _state()))
    assert ctx.session_hint == "cache_key:k"
