"""What every part of `JobStore` shares: the client, its scripts, the settings, and
the one place Redis errors are translated (`redis_call`)."""

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from ..conf import Settings
from ..connection import Connection
from ..exceptions import RedisUnavailable
from .records import REDIS_ERRORS

P = ParamSpec("P")
R = TypeVar("R")


def redis_call(
    lead: str | Callable[..., str],
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Make a store method raise `RedisUnavailable` for the errors in `REDIS_ERRORS`
    (``raise ... from err``), and let every other error out unchanged.

    Every public `JobStore` method carries it (tests/test_store_errors.py checks
    that). The message is `lead`, or what `lead` returns for the method's
    arguments, then the error's text. When nothing is raised this costs one call
    layer and a try block, which is free in Python 3.11+.
    """

    def decorate(method: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(method)
        def call(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return method(*args, **kwargs)
            except REDIS_ERRORS as err:
                text = lead if isinstance(lead, str) else lead(*args, **kwargs)
                raise RedisUnavailable(f"{text}: {err}") from err

        return call

    return decorate


class StoreBase:
    """The connection and settings one `JobStore` works with."""

    def __init__(self, connection: Connection, settings: Settings) -> None:
        self.connection = connection
        self.client = connection.client
        self.scripts = connection.scripts
        self.settings = settings
        self.prefix = settings.prefix
        # Queue name -> ms of this process's last SADD of it to the queues set
        # (enqueueing.py).
        self._queue_names_sent: dict[str, int] = {}
