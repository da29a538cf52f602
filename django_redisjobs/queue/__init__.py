"""All job-state reads and writes in Redis.

Every transition of a job goes through a `JobStore` method, and each multi-key
transition is one Lua script call (see `lua/`). The worker, handles, the scheduler
and the cron command all use `JobStore`, so there is one implementation of the
state machine.

`JobStore` is composed of parts, one module per concept: `enqueueing` (storing new
jobs), `claims` (claims, outcomes and leases), `recovery` (promotion of due jobs,
recovery of lost ones, trimming), `reads` (jobs and paged listings), `control`
(cancel, cancel flag, progress), `workers` (the worker registry) and `cron_state`.
`records` holds the values they take and return. Each script's KEYS list is built
by a `<script>_keys` function in the module of the method that calls the script.
"""

from ..job import JobStatus
from ..scripts import Claimed, CronClaim, Recovered
from .records import (
    QUEUE_NAME_REFRESH_MS,
    REDIS_ERRORS,
    WORKER_LOST,
    Cancelled,
    CronState,
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
