"""``POST /v1/responses/compact``: the model summarises a conversation into one sealed ``compaction`` item.

The request is a Responses request without the answer's knobs (``model``,
``input``, ``instructions``, ``previous_response_id``). The conversation goes to
a replica like any other turn, with one more user message asking for a summary
(``SUMMARY_REQUEST``), no tools and plain text out; the answer is a
``response.compaction`` object whose ``output`` is the conversation's user
messages followed by one ``compaction`` item: the summary sealed for the caller
(``router.sealing``, purpose ``compaction``). Sent back in a later
``/v1/responses`` input, the item is opened and its summary heads the system
prompt (``conversation.to_messages``), so the conversation goes on from a short
prompt. Never streamed, never stored.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from fleetgate.core.config import RouterConfig
from fleetgate.router.canonical.fold import Completion
from fleetgate.router.canonical.ids import new_item_id
from fleetgate.router.dialects.responses.conversation import normalize_items
from fleetgate.router.dialects.responses.dialect import ResponsesDialect, turn_of
from fleetgate.router.dialects.responses.protocol import ResponsesRequest
from fleetgate.router.dialects.responses.request import to_generate_request
from fleetgate.router.dialects.responses.response import to_json, usage_of
from fleetgate.router.pipeline.context import RequestContext
from fleetgate.router.sealing import COMPACTION
from fleetgate.v1 import replica_pb2 as pb

SUMMARY_REQUEST = (
    "Summarize the conversation above for your own later use: the user's goal, what was done and found, "
    "decisions and open questions, names of files, commands and values that matter. Be complete and brief; "
    "write only the summary."
)
# Room for the summary unless the request sets max_output_tokens.
DEFAULT_SUMMARY_TOKENS = 1024


class CompactRequest(ResponsesRequest):
    """The body of ``POST /v1/responses/compact``: never streamed, never stored."""

    stream: Literal[False] = False
    store: Literal[False] = Field(default=False)


class CompactDialect(ResponsesDialect):
    """A Responses turn whose answer is the conversation compacted."""

    wire_model = CompactRequest

    def wants_stream(self, request: ResponsesRequest) -> bool:
        return False

    def to_canonical(
        self, request: ResponsesRequest, ctx: RequestContext, settings: RouterConfig
    ) -> pb.GenerateRequest:
        turn = turn_of(ctx)
        turn.conversation = [*turn.history, *normalize_items(request.items)]
        ask = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": SUMMARY_REQUEST}]}
        plain = request.model_copy(update={"tools": [], "tool_choice": "none", "text": None})
        generate = to_generate_request(plain, [*turn.conversation, ask], ctx.request_id)
        if not generate.sampling.HasField("max_tokens"):
            generate.sampling.max_tokens = DEFAULT_SUMMARY_TOKENS
        return generate

    def render_json(self, request: ResponsesRequest, completion: Completion, ctx: RequestContext) -> dict[str, Any]:
        sealer = turn_of(ctx).sealer
        assert sealer is not None, "the compact route seals: it sets the turn's sealer before translation"
        users = [item for item in turn_of(ctx).conversation if item.get("type") == "message" and item["role"] == "user"]
        compaction = {"id": new_item_id("cmp_"), "type": "compaction",
                      "encrypted_content": sealer.seal(COMPACTION, completion.text.strip())}
        return {
            "id": new_item_id("cmpresp_"),
            "object": "response.compaction",
            "created_at": ctx.created,
            "output": [*users, compaction],
            "usage": to_json(usage_of(completion.usage.to_pb())),
        }


COMPACT = CompactDialect()
