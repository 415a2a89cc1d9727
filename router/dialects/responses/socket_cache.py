"""The responses one Responses WebSocket made, kept for its ``previous_response_id`` (pure, per connection).

Every response the connection finished (stored or not) is kept here, in this
router process's memory, for as long as the connection is open: a
``store: false`` continuation on the same socket is served from it without the
response store, as OpenAI's WebSocket mode serves it from its connection-local
cache. Nothing here is shared: another connection, or another router, never
sees it. The most recent ``CAPACITY`` responses are kept (a continuation almost
always names the last one); ``evict`` drops one whose continuation failed, so
a client retrying does not continue from state that failed once.
"""

from __future__ import annotations

from collections import OrderedDict

from fleetgate.router.response_store import StoredResponse

# Responses kept per connection, the most recently used first to stay.
CAPACITY = 8


class ConnectionCache:
    """Finished responses of one connection by id, the least recently used dropped past ``capacity``."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self._capacity = capacity
        self._responses: OrderedDict[str, StoredResponse] = OrderedDict()

    def get(self, response_id: str) -> StoredResponse | None:
        response = self._responses.get(response_id)
        if response is not None:
            self._responses.move_to_end(response_id)
        return response

    def put(self, response: StoredResponse) -> None:
        self._responses[response.id] = response
        self._responses.move_to_end(response.id)
        while len(self._responses) > self._capacity:
            self._responses.popitem(last=False)

    def evict(self, response_id: str) -> None:
        self._responses.pop(response_id, None)

    def __len__(self) -> int:
        return len(self._responses)
