"""The Redis connection of this process (broker, progress events, cancel flags), and
the Celery transport over it."""

from __future__ import annotations

from functools import lru_cache

import redis
from kombu.transport import redis as kombu_redis

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


class _Channel(kombu_redis.Channel):
    """Kombu's Redis channel, reusing one client for its connection pool.

    Kombu builds a new ``redis.Redis`` for every publish, acknowledgement and event
    (``conn_or_acquire``), and redis-py builds its table of about 170 response callbacks
    in each client's constructor (redis/redis-py#3624): about 150 µs, four times per
    job in a worker's main process. A client holds no connection of its own (it takes
    one from the pool per command), so one per pool serves every caller.
    """

    _pool_client: redis.Redis | None = None

    def _create_client(self, asynchronous: bool = False) -> redis.Redis:
        if asynchronous:  # the consumer's BRPOP client: kombu creates it once
            return super()._create_client(asynchronous=True)
        client = self._pool_client
        if client is None or client.connection_pool is not self.pool:  # a reconnect makes a new pool
            client = self._pool_client = super()._create_client()
        return client


class Transport(kombu_redis.Transport):
    """Celery's transport (``celeryconfig.broker_transport``): kombu's Redis transport
    with :class:`_Channel`."""

    Channel = _Channel
