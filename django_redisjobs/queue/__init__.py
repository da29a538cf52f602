"""All job-state reads and writes in Redis.

Every transition of a job goes through a `JobStore` method, and each multi-key
transition is one Lua script call (see `lua/`). The worker, handles, the scheduler
and the cron command all use `JobStore`, so there is one implementation of the
state machine.

`JobStore` is composed of parts, one module per concept: `enqueueing` (storing new
jobs), `claims` (claims, outcomes and leases), `recovery` (promotion of due jobs,
recovery of lost ones, trimming), `reads` (jobs and paged listings),
`console_reads` (the admin's bounded reads: summaries, rows, workers, counters),
`control` (cancel, cancel flag, progress), `operations` (retry, bulk cancel,
delete, purge, empty, pause), `workers` (the worker registry) and `cron_state`.
`records` holds the values they take and return. Each script's KEYS list is built
by a `<script>_keys` function in the module of the method that calls the script.

One error contract: every public `JobStore` method (and `EndWatch.wait`) raises
`RedisUnavailable`, chained to the redis-py error, when Redis cannot serve it
now: connection lost or refused, a timeout, out of memory under
``maxmemory-policy noeviction``, a read-only replica (`records.REDIS_ERRORS`).
This holds for plain commands, pipelines and script calls alike; `base.redis_call`
is the one place that translates. Any other Redis error, such as a
``ResponseError`` for WRONGTYPE on damaged data, is let out unchanged: it is a
bug or damaged data, not an outage, and retrying will not fix it. Methods raise
the app's own errors as their docstrings say (`JobDoesNotExist`, `InvalidJob`);
`claim` and `wait_then_claim` never raise for a damaged job hash: they return it
as `Damaged`. docs/internals.md has the table per method.
"""

from ..job import JobStatus
from ..scripts import CronClaim, Recovered
from .console_reads import (
    FILTER_WINDOW,
    HeldJob,
    JobRow,
    QueueSummary,
    ServerInfo,
    WorkerRecord,
)
from .control import EndWatch
from .records import (
    QUEUE_NAME_REFRESH_MS,
    WORKER_LOST,
    Cancelled,
    CronState,
    Damaged,
    DurabilityProblem,
    EnqueueRequest,
    EventSummary,
    GroupSummary,
    JobState,
    Outcome,
    Persistence,
    Placed,
    StreamEntry,
    WorkerInfo,
)
from .store import JobStore, get_store

__all__ = [
    "FILTER_WINDOW",
    "QUEUE_NAME_REFRESH_MS",
    "WORKER_LOST",
    "Cancelled",
    "CronClaim",
    "CronState",
    "Damaged",
    "DurabilityProblem",
    "EndWatch",
    "EnqueueRequest",
    "EventSummary",
    "GroupSummary",
    "HeldJob",
    "JobRow",
    "JobState",
    "JobStatus",
    "JobStore",
    "Outcome",
    "Persistence",
    "Placed",
    "QueueSummary",
    "Recovered",
    "StreamEntry",
    "ServerInfo",
    "WorkerInfo",
    "WorkerRecord",
    "get_store",
]
