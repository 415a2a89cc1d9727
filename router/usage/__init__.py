"""Usage per API key: the ledger in Redis (``ledger``), what one request is charged (``charge``), the
bounded per-key metrics labels (``key_labels``)."""
