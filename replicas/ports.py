"""Which port a replica's servers (gRPC, metrics) listen on: the first free one at or above a base, on this node.

Replicas on Kubernetes run one per worker pod, and the pod spec and the
PodMonitor name the base ports (``replica.base_port`` / ``metrics_base_port``),
so every replica must take the base itself when it is free on its own node;
several replicas on one machine (the local cluster) take the base, the base + 1,
and so on. A base of 0 means any free port, chosen by the OS.

A port is probed with a plain socket before the server binds it, so a taken
port is skipped quietly; a bind that still fails (another replica won the race
for the same port) moves on to the next port.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable
from typing import TypeVar

# How many ports above the base a replica tries before giving up.
PORT_SEARCH_SPAN = 100
_WILDCARD_HOSTS = {"", "0.0.0.0"}

Bound = TypeVar("Bound")


def port_is_free(host: str, port: int) -> bool:
    """True when nothing listens on ``host:port`` (a socket could bind it now)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind: TIME_WAIT is free
        with contextlib.suppress(OSError):
            probe.bind(("0.0.0.0" if host in _WILDCARD_HOSTS else host, port))
            return True
    return False


def bind_first_free(bind: Callable[[int], Bound], host: str, base: int, span: int = PORT_SEARCH_SPAN) -> Bound:
    """``bind(port)`` on the first port from ``base`` (``span`` ports at most) that is free on ``host``.

    ``base`` 0 calls ``bind(0)`` (any free port). ``bind`` raises ``OSError`` when
    its port is taken after all; the search then goes on. With ``span`` 1 only
    ``base`` itself is tried.
    """
    if base == 0:
        return bind(0)
    last = min(base + span, 65536)
    for port in range(base, last):
        if not port_is_free(host, port):
            continue
        with contextlib.suppress(OSError):
            return bind(port)
    if span == 1:
        raise OSError(f"port {base} on {host or '0.0.0.0'} is taken")
    raise OSError(f"no free port on {host or '0.0.0.0'} from {base} to {last - 1}")
