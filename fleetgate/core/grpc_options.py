"""gRPC options routers and replicas must agree on: the message size limit and keepalive.

Messages may be large (base64 images in a request), so both sides raise gRPC's
4 MiB default to ``MAX_MESSAGE_BYTES``: router channels for what they send and
receive, replica servers for what they receive.

A replica whose host vanishes (power loss, a network partition, a frozen
process) sends no FIN or RST, so without pings an open ``Generate`` call would
wait forever. Router channels send an HTTP/2 ping every ``PING_INTERVAL_MS``
(also while idle and while the replica is still computing a first token) and
drop the connection when one is not acknowledged within ``PING_TIMEOUT_MS``:
open calls then fail with UNAVAILABLE, and the router retries or reports the
failure in the client's dialect.

gRPC servers treat pings more frequent than every 5 minutes as abuse and close
the connection ("too_many_pings"), so the replica's server must accept pings
at least as often as routers send them.

``CHANNEL_OPTIONS`` are the router's side (router/channel_pool.py),
``SERVER_OPTIONS`` the replica's (replicas/server.py).
"""

from __future__ import annotations

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
PING_INTERVAL_MS = 10_000
PING_TIMEOUT_MS = 10_000

# Router -> replica channels: large messages both ways, keepalive pings.
CHANNEL_OPTIONS: list[tuple[str, int]] = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", PING_INTERVAL_MS),
    ("grpc.keepalive_timeout_ms", PING_TIMEOUT_MS),
    # gRPC core also bounds every ping's wait by this (default 60 s), whatever keepalive_timeout_ms says.
    ("grpc.http2.ping_timeout_ms", PING_TIMEOUT_MS),
    # Also ping a channel with no call open, so a dead connection is replaced before it is used.
    ("grpc.keepalive_permit_without_calls", 1),
    # A streaming call's client sends no data after the request: do not stop pinging because of that.
    ("grpc.http2.max_pings_without_data", 0),
]

# Replica servers: accept large requests and the routers' pings (half the interval leaves room for timer jitter).
SERVER_OPTIONS: list[tuple[str, int]] = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_permit_without_calls", 1),
    # GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS (default 5 minutes).
    ("grpc.http2.min_ping_interval_without_data_ms", PING_INTERVAL_MS // 2),
]
