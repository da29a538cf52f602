"""What every part of `JobStore` shares: the client, its scripts and the settings."""

from typing import Any

from ..conf import Settings
from ..connection import Connection
from ..exceptions import RedisUnavailable
from .records import REDIS_ERRORS


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

    def _read(self, call: Any) -> Any:
        try:
            return call()
        except REDIS_ERRORS as err:
            raise RedisUnavailable(f"Could not read from Redis: {err}") from err
