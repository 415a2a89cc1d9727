"""A bounded metrics label for API key ids: the first ``max_keys`` distinct ids seen keep their own, the rest
are ``other`` (``router.usage.metrics_max_keys``), so a deployment with thousands of keys cannot blow up
Prometheus. Ids, never names or secrets: a key's id is what ``fleetgate keys list`` and the admin API show.
With auth off every request is the ``anonymous`` key."""

from __future__ import annotations

OTHER_KEYS = "other"
ANONYMOUS_KEY = "anonymous"


class KeyLabels:
    """Per router process: which key ids have a label of their own."""

    def __init__(self, max_keys: int) -> None:
        self.max_keys = max_keys
        self._labelled: set[str] = set()

    def label(self, key_id: str) -> str:
        key = key_id or ANONYMOUS_KEY
        if key in self._labelled:
            return key
        if len(self._labelled) < self.max_keys:
            self._labelled.add(key)
            return key
        return OTHER_KEYS
