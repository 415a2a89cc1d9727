"""The replica's side of the prefix index: which router prefix blocks its KV cache holds, published to Redis.

``block_map.RouterBlockMap`` (pure) maps each router block of a prompt
(``GenerateRequest.prefix``) onto the token block holding its end, and follows
the engine's KV cache events to say which router blocks became held or dropped;
``publisher.KvIndexPublisher`` is the engine's ``KvEventSink`` and writes those
changes to the replica's set in Redis (``fleetgate.core.kv_index``).
"""
