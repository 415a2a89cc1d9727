"""Which remote MCP server URLs a request may name (``tools.mcp_allowed_urls``): a pure URL-prefix match.

An entry allows a URL when scheme, host and port are the same (the port a scheme implies counts: ``https://h``
and ``https://h:443`` are one origin) and the URL's path starts at a path-segment boundary of the entry's path
(``https://h/mcp`` allows ``https://h/mcp`` and ``https://h/mcp/x``, never ``https://h/mcpx``). Query and
fragment of the entry are ignored; a URL with user info is never allowed (it could hide the real host from a
reader). The router answers 400 for a URL this refuses; the toolbox refuses it again (defence in depth).
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import SplitResult, urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(parts: SplitResult) -> tuple[str, str, int | None] | None:
    """(scheme, host, port) of a URL, or None when it has none usable."""
    try:
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port if port is not None else _DEFAULT_PORTS[scheme]


def _path_within(path: str, prefix: str) -> bool:
    prefix = prefix.rstrip("/")
    return not prefix or path == prefix or path.startswith(prefix + "/")


def url_allowed(url: str, allowed: Sequence[str]) -> bool:
    """Whether ``url`` falls under one of the ``allowed`` URL prefixes (an empty list allows nothing)."""
    parts = urlsplit(url.strip())
    origin = _origin(parts)
    if origin is None or "@" in parts.netloc or ".." in parts.path.split("/"):
        return False
    for entry in allowed:
        entry_parts = urlsplit(entry.strip())
        if _origin(entry_parts) == origin and _path_within(parts.path, entry_parts.path):
            return True
    return False
