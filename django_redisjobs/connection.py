"""Builds, caches and closes the redis client (and its registered scripts).

Redis is named by ``REDISJOBS["REDIS_URL"]``, by the sentinels of
``REDISJOBS["SENTINEL"]``, or by a django-redis cache alias. With
an alias, the cache's connection settings are reused through django-redis's public
`get_redis_connection()`, but the app keeps a pool of its own: replies must decode
to `str`, and a worker's blocking calls must not hold the cache's connections.
"""

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis
from hiredis import pack_command
from redis.backoff import NoBackoff
from redis.exceptions import ResponseError
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelManagedConnection

from .conf import Settings, get_settings
from .exceptions import RedisJobsConfigurationError
from .redis_urls import redact_url
from .scripts import Scripts
from .sentinel import SentinelSettings

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


def connect(client: redis.Redis) -> Connection:
    """Register the scripts on `client`, sending their calls through a
    `ScriptTransport` of the client's pool."""
    return Connection(client, Scripts(client, ScriptTransport(client.connection_pool)))


class ScriptTransport:
    """Sends script calls in raw protocol on a few connections kept between calls.

    The enqueue and claim hot path. redis-py's command layer (a type check per
    argument, observability hooks, the retry wrapper) and a checkout from its pool
    (a lock, hooks, a poll of the socket for stray data) together cost about as
    much client CPU as the round trip itself. Here a call packs its commands with
    hiredis, writes them in one send and reads the replies, on a connection taken
    from a LIFO list of up to `KEPT_MAX` idle ones (at most a quarter of the pool's
    `max_connections`, redis-py's default being 100: the pool cannot lend these to
    its other users). What redis-py guarded is kept:

    - A call cut off by a dropped connection or a timeout is sent again as the
      client's `retry` policy says (``REDIS_OPTIONS["retry"]``; connection.py's
      default is one immediate resend): the connection's own `Retry` object
      decides which errors count, how often and after what backoff, and each
      failure disconnects before the next try. Running a script twice loses
      nothing: enqueue skips known ids, finish checks the attempt it records,
      and jobs of a claim whose reply was lost run out of lease and are
      recovered. An error reply is a reply, never resent.
    - A call that ends without reading all its replies (any other exception,
      e.g. a JobTimeout raised into a job thread between send and read)
      disconnects its connection, so no late reply is read by the next call.
    - A forked child never uses its parent's sockets: the idle list is dropped
      when the process id differs from the one that filled it.
    """

    KEPT_MAX = 4

    def __init__(self, pool: redis.ConnectionPool) -> None:
        self._pool = pool
        self._idle: list[Any] = []  # redis-py leaves Connection's methods untyped
        self._keep = min(self.KEPT_MAX, pool.max_connections // 4)
        self._pid = os.getpid()

    def call_script(self, sha: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """EVALSHA `sha` with `keys` and `args` and return the reply; an error
        reply (NOSCRIPT included) is raised as redis-py's `ResponseError`."""
        # call_after's path, unrolled for one command: this is the hot one.
        packed = [pack_command(("EVALSHA", sha, len(keys), *keys, *args))]
        conn = self._take()
        try:
            try:
                conn.send_packed_command(packed)
                return conn.read_response()
            except ResponseError:
                raise  # an error reply, read in full: the connection is in step
            except Exception as err:  # the retry policy decides what to resend
                (reply,) = _resend(conn, packed, err)
        except ResponseError:
            raise
        except BaseException:
            conn.disconnect()
            raise
        finally:
            self._put_back(conn)
        if isinstance(reply, ResponseError):
            raise reply
        return reply

    def call_after(
        self,
        command: Sequence[Any],
        sha: str,
        keys: Sequence[str],
        args: Sequence[Any],
    ) -> tuple[Any, Any]:
        """Send `command`, then EVALSHA `sha`, in one write on one connection and
        return both replies, an error reply as a `ResponseError` value (not
        raised). Redis runs them back to back: after a blocking command, the
        script runs the moment the wait ends. A resend sends both again."""
        packed = [
            pack_command(tuple(command)),
            pack_command(("EVALSHA", sha, len(keys), *keys, *args)),
        ]
        first, second = self._exchange(packed)
        return first, second

    def _exchange(self, packed: list[bytes]) -> list[Any]:
        """Send `packed` and read one reply per command, resending per policy."""
        conn = self._take()
        try:
            try:
                return _send_and_read(conn, packed)
            except Exception as err:  # the retry policy decides what to resend
                return _resend(conn, packed, err)
        except BaseException:
            # redis-py disconnects when a read fails; this also covers an
            # exception between send and read, after which a reply is on its way.
            conn.disconnect()
            raise
        finally:
            self._put_back(conn)

    def _take(self) -> Any:
        # One getpid() per call, about 0.25 us: no fork hook, no global state.
        if self._pid != os.getpid():
            self._idle, self._pid = [], os.getpid()
        try:
            # list.pop and list.append are atomic: no lock between threads.
            conn = self._idle.pop()
        except IndexError:
            return self._pool.get_connection()
        _reconnect_if_closed(conn)
        return conn

    def _put_back(self, conn: Any) -> None:
        # Threads putting back at the same moment may leave a few over `_keep`.
        if len(self._idle) < self._keep:
            self._idle.append(conn)
        else:
            self._pool.release(conn)


def _reconnect_if_closed(conn: Any) -> None:
    """Connect a closed Sentinel-managed connection through its `connect()`.

    Sending on a closed redis-py connection (redis-py 8) reconnects to the
    address it last had, skipping `connect()`, which a Sentinel-managed
    connection overrides to ask the sentinels for the current primary: after a
    failover it would dial the old primary for ever. Plain connections keep
    redis-py's own reconnect; open ones, the hot path, cost one check.
    """
    if conn._sock is None and isinstance(conn, SentinelManagedConnection):
        conn.connect()  # type: ignore[no-untyped-call]  # unannotated in redis-py


def _send_and_read(conn: Any, packed: list[bytes]) -> list[Any]:
    conn.send_packed_command(packed)
    # Every reply is read, error replies too, so the connection stays in step.
    return [_reply_or_error(conn) for _ in packed]


def _reply_or_error(conn: Any) -> Any:
    try:
        return conn.read_response()
    except ResponseError as err:
        return err


def _resend(conn: Any, packed: list[bytes], error: Exception) -> list[Any]:
    """Hand the first attempt's `error` to the connection's retry policy, which
    raises it, or disconnects, backs off and has the commands sent again.

    The same connection object is used again: disconnected, it connects afresh,
    where another idle connection may be just as stale (after a restart).
    """
    first: list[Exception] = [error]

    def attempt() -> list[Any]:
        if first:
            raise first.pop()
        _reconnect_if_closed(conn)
        return _send_and_read(conn, packed)

    result: list[Any] = conn.retry.call_with_retry(
        attempt, lambda _error: conn.disconnect()
    )
    return result


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


def _client_from_sentinel(
    config: SentinelSettings, options: dict[str, Any]
) -> redis.Redis:
    """A client of the primary the sentinels name; each new connection asks them
    again, so a failover needs no restart (see sentinel.py)."""
    sentinels = Sentinel(  # type: ignore[no-untyped-call]
        list(config.nodes),
        sentinel_kwargs={
            "username": config.username,
            "password": config.password,
            "socket_connect_timeout": options["socket_connect_timeout"],
            "socket_timeout": 5,
            "decode_responses": True,
            "retry": Retry(NoBackoff(), 0),
        },
    )
    client: redis.Redis = sentinels.master_for(  # type: ignore[no-untyped-call]
        config.service, db=config.db, **options
    )
    return client


def build_client(settings: Settings) -> redis.Redis:
    """Create a new client for `settings` (no I/O happens until the first command)."""
    options = {**_DEFAULT_OPTIONS, **settings.redis_options, "decode_responses": True}
    if settings.sentinel is not None:
        return _client_from_sentinel(settings.sentinel, options)
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
            cached = (settings, connect(build_client(settings)))
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
