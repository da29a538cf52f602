"""`JobStore`, assembled from its parts, and the process's shared instance."""

from ..conf import get_settings
from ..connection import get_connection
from .cron_state import CronOps
from .jobs import JobOps
from .workers import WorkerOps


class JobStore(JobOps, WorkerOps, CronOps):
    """Job storage in one Redis, under one key prefix.

    Its parts live in sibling modules by who drives them (producers and handles,
    workers, cron); each multi-key transition is one Lua script call.
    """


def get_store() -> JobStore:
    """The `JobStore` for the current settings, sharing the process's connection."""
    connection = get_connection()
    store = _stores.get(id(connection))
    if store is None or store.connection is not connection:
        store = JobStore(connection, get_settings())
        _stores[id(connection)] = store
    return store


_stores: dict[int, JobStore] = {}
