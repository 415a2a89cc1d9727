"""Whether the router's Redis answers, and how to name it in a message without its password.

``/ready`` (router/meta_routes.py) and ``fleetgate keys`` (router/keys_cli.py) both
say "Redis is unreachable at <url>" when it does not answer.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.exceptions import RedisError

# /ready waits this long for Redis' PONG.
PING_TIMEOUT_SECONDS = 1.0


def display_url(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def unreachable_message(url: str) -> str:
    return f"Redis is unreachable at {display_url(url)}"


async def redis_answers(redis: aioredis.Redis, timeout: float = PING_TIMEOUT_SECONDS) -> bool:
    """True when Redis answers PING within ``timeout`` seconds."""
    try:
        await asyncio.wait_for(redis.ping(), timeout)
    except (RedisError, OSError, TimeoutError):
        return False
    return True
