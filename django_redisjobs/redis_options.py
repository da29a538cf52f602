"""What ``REDISJOBS["REDIS_OPTIONS"]`` may hold: redis-py's own client options.

redis-py takes them as keyword arguments and only fails on a wrong one at the
first connection, deep in a worker's loop or a request, with a bare TypeError.
Checking names against redis-py's signature, and the types of the options people
set most, turns that into a configuration error naming the option.
"""

import inspect
from collections.abc import Callable
from typing import Any

import redis

# Options the app sets itself, and which must not change.
_OWNED = {"decode_responses": "replies are read as text; the app always sets True"}
# Options that make no sense here: the app builds the pool from the URL.
_REFUSED = {"self", "connection_pool", "host", "port", "db", "unix_socket_path"}


def _number_or_none(value: Any) -> bool:
    return value is None or (
        isinstance(value, int | float) and not isinstance(value, bool) and value > 0
    )


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _flag(value: Any) -> bool:
    return isinstance(value, bool)


_TYPES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "socket_timeout": (_number_or_none, "a number of seconds above 0, or None"),
    "socket_connect_timeout": (_number_or_none, "a number of seconds above 0, or None"),
    "health_check_interval": (
        lambda v: isinstance(v, int | float) and not isinstance(v, bool) and v >= 0,
        "a number of seconds, 0 or more",
    ),
    "max_connections": (_whole, "a whole number of 1 or more"),
    "socket_keepalive": (_flag, "True or False"),
    "retry_on_timeout": (_flag, "True or False"),
    "ssl": (_flag, "True or False"),
    "password": (lambda v: v is None or isinstance(v, str), "a str, or None"),
    "username": (lambda v: v is None or isinstance(v, str), "a str, or None"),
    "client_name": (lambda v: v is None or isinstance(v, str), "a str, or None"),
}


def known_options() -> frozenset[str]:
    """The keyword arguments of `redis.Redis` this app passes on."""
    names = set(inspect.signature(redis.Redis.__init__).parameters)
    return frozenset(names - _REFUSED - set(_OWNED))


def problems(options: dict[str, Any]) -> list[str]:
    """One sentence per option redis-py would refuse or the app cannot honour."""
    known = known_options()
    found = []
    for name in sorted(options):
        value = options[name]
        if name in _OWNED:
            found.append(f"sets {name!r}, which the app owns: {_OWNED[name]}.")
        elif name in _REFUSED:
            found.append(
                f"sets {name!r}; give the server in REDIS_URL (or CACHE_ALIAS) instead."
            )
        elif name not in known:
            found.append(
                f"has {name!r}, which is not a redis-py client option "
                "(see redis.Redis's keyword arguments)."
            )
        elif name in _TYPES and not _TYPES[name][0](value):
            found.append(f"sets {name!r} to {value!r}; use {_TYPES[name][1]}.")
    return found
