"""The Redis connection of this process (broker, progress events, cancel flags)."""

from __future__ import annotations

from functools import lru_cache

import redis

from .settings import get_settings

#: Every key vitalq itself writes starts with this (Celery's own keys do not).
KEY_PREFIX = "vitalq:"


@lru_cache(maxsize=None)
def _client(url: str) -> redis.Redis:
    # redis-py's pool notices a fork and reconnects, so a forked worker child is safe.
    # Each open websocket holds a connection while it waits for events (XREAD BLOCK):
    # redis-py's default pool of 100 would refuse the 101st.
    return redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=30, health_check_interval=30,
                                max_connections=4096)


def get_redis() -> redis.Redis:
    return _client(get_settings().redis_url)
