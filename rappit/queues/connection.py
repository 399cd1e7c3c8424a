"""Redis connections for the queues.

Every connection is made with ``socket_timeout=None``: BullMQ workers block on Redis for as long
as the next delayed job is away, and redis-py's default read timeout would cut those waits short
(delayed jobs and retries later than the timeout would then never be picked up).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

CONNECT_TIMEOUT_S = 3.0


def connection_kwargs(url: str) -> dict[str, Any]:
    """Keyword arguments for ``redis.Redis`` from a ``redis://``, ``rediss://`` or ``unix://``
    URL."""
    parsed = urlparse(url)
    query = parse_qs(parsed.query)
    kwargs: dict[str, Any] = {
        "socket_timeout": None,
        "socket_connect_timeout": CONNECT_TIMEOUT_S,
        "socket_keepalive": True,
        "health_check_interval": 30,
    }
    if parsed.username:
        kwargs["username"] = unquote(parsed.username)
    if parsed.password:
        kwargs["password"] = unquote(parsed.password)
    if parsed.scheme == "unix":
        kwargs["unix_socket_path"] = unquote(parsed.path)
        kwargs["db"] = int(query.get("db", ["0"])[0])
        # redis.Redis defaults host to localhost; harmless next to a socket path.
        return kwargs
    if parsed.scheme not in ("redis", "rediss"):
        raise ValueError(f"unsupported Redis URL scheme '{parsed.scheme}' (redis, rediss, unix)")
    kwargs["host"] = parsed.hostname or "localhost"
    kwargs["port"] = parsed.port or 6379
    path = parsed.path.lstrip("/")
    kwargs["db"] = int(path) if path else int(query.get("db", ["0"])[0])
    if parsed.scheme == "rediss":
        kwargs["ssl"] = True
    return kwargs


def create_client(url: str, *, retries: int = 2) -> aioredis.Redis:
    """A pooled client for producers and readers. Few retries: a caller such as the
    after-commit enqueue must not hang while Redis is away (the sweeper re-sends later)."""
    return aioredis.Redis(
        **connection_kwargs(url),
        decode_responses=True,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )


def redacted(url: str) -> str:
    """The URL without its password, for logs and banners."""
    parsed = urlparse(url)
    if not parsed.password:
        return url
    netloc = parsed.netloc.replace(f":{parsed.password}@", ":***@")
    return parsed._replace(netloc=netloc).geturl()
