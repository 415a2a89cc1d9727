"""The one tool-call id scheme (fleetgate.core.tool_call_ids): a dialect's prefix and 24 hex digits."""

from __future__ import annotations

import random
import re

from fleetgate.core.tool_call_ids import new_tool_call_id


def test_ids_are_the_prefix_and_24_hex_digits() -> None:
    assert re.fullmatch(r"call_[0-9a-f]{24}", new_tool_call_id())
    assert re.fullmatch(r"toolu_[0-9a-f]{24}", new_tool_call_id("toolu_"))


def test_ids_from_the_os_differ() -> None:
    assert len({new_tool_call_id() for _ in range(100)}) == 100


def test_ids_drawn_from_a_seeded_generator_repeat() -> None:
    first = [new_tool_call_id(rng=random.Random("seed")) for _ in range(2)]
    assert first[0] == first[1]
    assert new_tool_call_id(rng=random.Random("other seed")) != first[0]
