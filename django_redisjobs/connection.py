"""Builds, caches and closes the redis client (and its registered scripts).

Redis is named by ``REDISJOBS["REDIS_URL"]`` or by a django-redis cache alias. With
an alias, the cache's connection settings are reused through django-redis's public
`get_redis_connection()`, but the app keeps a pool of its own: replies must decode
to `str`, and a worker's blocking calls must not hold the cache's connections.
"""

import threading
from dataclasses import dataclass
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .conf import Settings, get_settings, redact_url
from .exceptions import RedisJobsConfigurationError
from .scripts import Scripts

# Fail fast on a dead host, and let the kernel notice a dropped peer. One immediate
# retry on a fresh connection covers a pooled connection that Redis closed (CLIENT
# KILL, restart); longer outages are the caller's to handle: the worker logs and
# backs off with its own cap, and enqueue raises `RedisUnavailable` at once rather
# than after redis-py's default of 10 hidden retries (redis-py >= 6), which would
# also delay and hide the worker's warnings.
_DEFAULT_OPTIONS: dict[str, Any] = {
    "socket_connect_timeout": 5,
    "socket_keepalive": True,
    "health_check_interval": 30,
    "retry": Retry(NoBackoff(), 1),
}


@dataclass(frozen=True)
class Connection:
    """A redis client whose replies decode to `str`, plus its registered scripts."""

    client: redis.Redis
    scripts: Scripts

    def close(self) -> None:
        self.client.close()


_lock = threading.Lock()
_cache: dict[int, tuple[Settings, Connection]] = {}


def _pool_from_cache_alias(alias: str, options: dict[str, Any]) -> redis.ConnectionPool:
    try:
        from django_redis import get_redis_connection
    except ImportError as err:  # pragma: no cover - django-redis is a dependency
        raise RedisJobsConfigurationError(
            "REDISJOBS['CACHE_ALIAS'] needs django-redis installed."
        ) from err
    try:
        cache_client = get_redis_connection(alias)
    except Exception as err:
        raise RedisJobsConfigurationError(
            f"REDISJOBS['CACHE_ALIAS'] is {alias!r}, which is not a django-redis "
            f"cache in CACHES ({err})."
        ) from err
    source = cache_client.connection_pool
    kwargs = {**source.connection_kwargs, **options, "decode_responses": True}
    return redis.ConnectionPool(connection_class=source.connection_class, **kwargs)


def build_client(settings: Settings) -> redis.Redis:
    """Create a new client for `settings` (no I/O happens until the first command)."""
    options = {**_DEFAULT_OPTIONS, **settings.redis_options, "decode_responses": True}
    if settings.cache_alias:
        pool = _pool_from_cache_alias(settings.cache_alias, options)
        return redis.Redis(connection_pool=pool)
    url = settings.redis_url or ""  # conf sets one of the URL and the alias
    try:
        return redis.Redis.from_url(url, **options)
    except ValueError as err:
        raise RedisJobsConfigurationError(
            f"REDISJOBS['REDIS_URL'] is {redact_url(url)!r}, which redis-py "
            f"cannot use: {err}"
        ) from err


def get_connection() -> Connection:
    """Return the process's shared connection for the current settings."""
    settings = get_settings()
    key = id(settings)
    cached = _cache.get(key)
    if cached is not None and cached[0] is settings:
        return cached[1]
    with _lock:
        cached = _cache.get(key)
        if cached is None or cached[0] is not settings:
            client = build_client(settings)
            cached = (settings, Connection(client, Scripts(client)))
            _cache[key] = cached
    return cached[1]


def close_all(**kwargs: Any) -> None:
    """Close every cached client; also a `setting_changed` receiver."""
    if kwargs.get("setting", "REDISJOBS") != "REDISJOBS":
        return
    with _lock:
        connections = [conn for _, conn in _cache.values()]
        _cache.clear()
    for conn in connections:
        conn.close()
