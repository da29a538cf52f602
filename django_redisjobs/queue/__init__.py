"""All job-state reads and writes in Redis.

Every transition of a job goes through a `JobStore` method, and each multi-key
transition is one Lua script call (see `lua/`). The worker, handles, the scheduler
and the cron command all use `JobStore`, so there is one implementation of the
state machine.
"""

from ..job import JobStatus
from ..scripts import Claimed, CronClaim, Recovered
from .records import (
    QUEUE_NAME_REFRESH_MS,
    REDIS_ERRORS,
    WORKER_LOST,
    Cancelled,
    CronState,
    Damaged,
    DurabilityProblem,
    EnqueueRequest,
    JobState,
    Outcome,
    Persistence,
    Placed,
    WorkerInfo,
)
from .store import JobStore, get_store

__all__ = [
    "QUEUE_NAME_REFRESH_MS",
    "REDIS_ERRORS",
    "WORKER_LOST",
    "Cancelled",
    "Claimed",
    "CronClaim",
    "CronState",
    "Damaged",
    "DurabilityProblem",
    "EnqueueRequest",
    "JobState",
    "JobStatus",
    "JobStore",
    "Outcome",
    "Persistence",
    "Placed",
    "Recovered",
    "WorkerInfo",
    "get_store",
]
