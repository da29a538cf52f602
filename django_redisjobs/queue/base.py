"""What every part of `JobStore` shares: the client, scripts, settings and key lists."""

from collections.abc import Sequence
from typing import Any

from .. import keys
from ..conf import Settings
from ..connection import Connection
from ..exceptions import RedisUnavailable
from ..job import enqueue_fields, field_table
from .records import REDIS_ERRORS, EnqueueRequest


def jobs_argv(
    head: list[Any], requests: Sequence[EnqueueRequest], leads: Sequence[Any]
) -> list[Any]:
    """`head`, then the jobs as enqueue_jobs.lua and claim_cron_slot.lua both take
    them: F, the F field names, then per job its lead value and its F values."""
    names, rows = field_table(
        [
            enqueue_fields(r.job, r.args_json, r.kwargs_json, at_front=r.at_front)
            for r in requests
        ]
    )
    head += [len(names), *names]
    for lead, values in zip(leads, rows, strict=True):
        head.append(lead)
        head.extend(values)
    return head


class StoreBase:
    """The connection and settings one `JobStore` works with."""

    def __init__(self, connection: Connection, settings: Settings) -> None:
        self.connection = connection
        self.client = connection.client
        self.scripts = connection.scripts
        self.settings = settings
        self.prefix = settings.prefix
        # Queue name -> ms of this process's last SADD of it to the queues set.
        self._queue_names_sent: dict[str, int] = {}
        # Queue name -> its enqueue key list, built once: every enqueue needs it.
        self._enqueue_key_lists: dict[str, list[str]] = {}

    # -- key lists, in the order each script documents ----------------------

    def _enqueue_keys(self, queue: str) -> list[str]:
        built = self._enqueue_key_lists.get(queue)
        if built is None:
            built = self._enqueue_key_lists[queue] = self._build_enqueue_keys(queue)
        return built

    def _build_enqueue_keys(self, queue: str) -> list[str]:
        p = self.prefix
        return [
            keys.ready(p, queue),
            keys.prioritized(p, queue),
            keys.scheduled(p, queue),
            keys.marker(p, queue),
            keys.job_prefix(p, queue),
            keys.unique_prefix(p, queue),
        ]

    def _claim_keys(self, queue: str) -> list[str]:
        p = self.prefix
        return [
            keys.ready(p, queue),
            keys.prioritized(p, queue),
            keys.active(p, queue),
            keys.marker(p, queue),
            keys.job_prefix(p, queue),
        ]

    def _finish_keys(self, queue: str) -> list[str]:
        p = self.prefix
        return [
            keys.active(p, queue),
            keys.scheduled(p, queue),
            keys.succeeded(p, queue),
            keys.dead(p, queue),
            keys.cancelled(p, queue),
            keys.ready(p, queue),
            keys.prioritized(p, queue),
            keys.marker(p, queue),
            keys.job_prefix(p, queue),
            keys.unique_prefix(p, queue),
        ]

    def _read(self, call: Any) -> Any:
        try:
            return call()
        except REDIS_ERRORS as err:
            raise RedisUnavailable(f"Could not read from Redis: {err}") from err
