"""gRPC keepalive between routers and replicas: the router's channels ping, the replica's server allows it.

A replica whose host vanishes (power loss, a network partition, a frozen
process) sends no FIN or RST, so without pings an open ``Generate`` call would
wait forever. Router channels send an HTTP/2 ping every ``PING_INTERVAL_MS``
(also while idle and while the replica is still computing a first token) and
drop the connection when one is not acknowledged within ``PING_TIMEOUT_MS``:
open calls then fail with UNAVAILABLE, and the router retries or reports the
failure in the client's dialect.

gRPC servers treat pings more frequent than every 5 minutes as abuse and close
the connection ("too_many_pings"), so the replica's server must accept pings
at least as often as routers send them: ``SERVER_OPTIONS`` (replicas/server.py).
"""

from __future__ import annotations

PING_INTERVAL_MS = 10_000
PING_TIMEOUT_MS = 10_000

# Router -> replica channels.
CHANNEL_OPTIONS: list[tuple[str, int]] = [
    ("grpc.keepalive_time_ms", PING_INTERVAL_MS),
    ("grpc.keepalive_timeout_ms", PING_TIMEOUT_MS),
    # gRPC core also bounds every ping's wait by this (default 60 s), whatever keepalive_timeout_ms says.
    ("grpc.http2.ping_timeout_ms", PING_TIMEOUT_MS),
    # Also ping a channel with no call open, so a dead connection is replaced before it is used.
    ("grpc.keepalive_permit_without_calls", 1),
    # A streaming call's client sends no data after the request: do not stop pinging because of that.
    ("grpc.http2.max_pings_without_data", 0),
]

# Replica servers: accept the routers' pings (half the interval leaves room for timer jitter).
SERVER_OPTIONS: list[tuple[str, int]] = [
    ("grpc.keepalive_permit_without_calls", 1),
    # GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS (default 5 minutes).
    ("grpc.http2.min_ping_interval_without_data_ms", PING_INTERVAL_MS // 2),
]
