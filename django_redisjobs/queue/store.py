"""`JobStore`, composed of its parts, and the process's shared instance."""

from ..conf import get_settings
from ..connection import get_connection
from .claims import ClaimOps
from .console_reads import ConsoleReads
from .control import ControlOps
from .cron_state import CronOps
from .enqueueing import EnqueueOps
from .operations import OperatorOps
from .recovery import RecoveryOps
from .streams import StreamOps
from .workers import WorkerOps


class JobStore(
    EnqueueOps,
    ClaimOps,
    RecoveryOps,
    ConsoleReads,
    ControlOps,
    OperatorOps,
    WorkerOps,
    CronOps,
    StreamOps,
):
    """Job storage in one Redis, under one key prefix.

    Each part lives in a sibling module named for what it does to jobs (see the
    package docstring; `ConsoleReads` extends `ReadOps` with the console's
    bounded listings); each multi-key transition is one Lua script call.
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
