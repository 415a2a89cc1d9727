"""Opening the sealed items a client sends back: reasoning ``encrypted_content`` and ``compaction`` items.

Run by the route before translation, with the caller's ``Sealer`` (``router.sealing``):
an opened reasoning item gets its text as ``content`` (what the model thought is
replayed), an opened compaction item its ``summary``. Content that does not open —
changed, made by another deployment, or sealed for another API key — is a 400
naming the item.
"""

from __future__ import annotations

from collections.abc import Sequence

from fleetgate.router.dialects.responses.protocol import CompactionItem, InputItem, ReasoningItem, ReasoningText
from fleetgate.router.errors import invalid_request
from fleetgate.router.sealing import COMPACTION, REASONING, SealBroken, Sealer


def has_sealed_items(items: Sequence[InputItem]) -> bool:
    return any(isinstance(item, CompactionItem) or (isinstance(item, ReasoningItem) and item.encrypted_content)
               for item in items)


def open_sealed_items(items: Sequence[InputItem], sealer: Sealer) -> None:
    """Fill in the text of every sealed item of ``items`` (the request's ``input``), in place."""
    for index, item in enumerate(items):
        try:
            if isinstance(item, ReasoningItem) and item.encrypted_content:
                item.content = [
                    ReasoningText(type="reasoning_text", text=sealer.open(REASONING, item.encrypted_content))
                ]
            elif isinstance(item, CompactionItem):
                item.summary = sealer.open(COMPACTION, item.encrypted_content)
        except SealBroken as exc:
            raise invalid_request(
                f"input[{index}].encrypted_content could not be opened ({exc}): send back the item exactly as this "
                "deployment returned it, with the same API key",
                f"input[{index}].encrypted_content",
            ) from None
