"""Claude Code's billing header block, made stable for prefix caching (pure).

Claude Code starts its system prompt with a block such as
``x-anthropic-billing-header: cc_version=2.1.197.0df; cc_entrypoint=cli;`` whose
last ``cc_version`` component (``.0df``, ``.84c``, ...) changes on every request,
so every prompt would differ from its first tokens on and no replica's prefix
cache (nor the router's prefix index) could ever match one. What to do with it is
``router.claude_code_billing_header``:

- ``normalise`` (default): the build suffix dropped (``cc_version=2.1.197;
  cc_entrypoint=cli;``), the rest of the block kept;
- ``drop``: the block removed;
- ``keep``: passed through as sent.

Only the first block of ``system`` is looked at, and only when it starts with
``BILLING_HEADER_PREFIX``; every other block, and the rest of the prompt, is left
exactly as sent.
"""

from __future__ import annotations

import re
from typing import Literal

from fleetgate.router.dialects.messages import protocol as wire

BillingHeaderMode = Literal["normalise", "drop", "keep"]
# The setting's default (fleetgate.core.config).
DEFAULT_BILLING_HEADER: BillingHeaderMode = "normalise"

BILLING_HEADER_PREFIX = "x-anthropic-billing-header:"
# ``cc_version=<major>.<minor>.<patch>.<build>``: the build is what varies per request.
_VERSION_WITH_BUILD = re.compile(r"(cc_version=\d+\.\d+\.\d+)\.[0-9A-Za-z]+")


def normalised_header(text: str) -> str:
    """The billing header ``text`` without the build suffix of its ``cc_version``."""
    return _VERSION_WITH_BUILD.sub(r"\1", text, count=1)


def is_billing_header(block: wire.TextBlock) -> bool:
    return block.text.startswith(BILLING_HEADER_PREFIX)


def stable_system(
    system: str | list[wire.TextBlock] | None, mode: BillingHeaderMode
) -> str | list[wire.TextBlock] | None:
    """``system`` with its leading billing header block handled per ``mode`` (see the module docstring); None
    when dropping it leaves no block."""
    if mode == "keep" or not isinstance(system, list) or not system or not is_billing_header(system[0]):
        return system
    rest = system[1:]
    if mode == "drop":
        return rest or None
    header = system[0].model_copy(update={"text": normalised_header(system[0].text)})
    return [header, *rest]
