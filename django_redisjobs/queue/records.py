"""Values the job store takes and returns, and the error set it retries on."""

import enum
from dataclasses import dataclass
from datetime import datetime

import redis

from ..exceptions import InvalidJob
from ..job import (
    Job,
    JobError,
)

WORKER_LOST = "django_redisjobs.WorkerLost"

QUEUE_NAME_REFRESH_MS = 10_000

# Redis cannot serve the command now, but may a moment later: unreachable, timed
# out, loading its data, full under maxmemory-policy noeviction, or a replica
# that a failover has not promoted yet. Callers retry (the worker) or report
# `RedisUnavailable` (enqueue, reads).
REDIS_ERRORS = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.exceptions.OutOfMemoryError,
    redis.exceptions.ReadOnlyError,
    # A replica whose primary is down, with replica-serve-stale-data no.
    redis.exceptions.MasterDownError,
    # (A server still loading its data set after a restart answers LOADING,
    # which redis-py raises as BusyLoadingError, a ConnectionError.)
)


class JobState(enum.StrEnum):
    """The per-queue collections a job id can sit in, for paged listings."""

    QUEUED = "queued"
    SCHEDULED = "scheduled"
    ACTIVE = "active"
    SUCCEEDED = "succeeded"
    DEAD = "dead"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class EnqueueRequest:
    """A job to store, plus where in the ready list it goes."""

    job: Job
    args_json: str
    kwargs_json: str
    at_front: bool = False


@dataclass(frozen=True, slots=True)
class StreamEntry:
    """One entry of an event stream: its stream id and its fields."""

    entry_id: str
    fields: dict[str, str]


@dataclass(frozen=True, slots=True)
class GroupSummary:
    """One consumer group of an event stream, as XINFO GROUPS gives it."""

    name: str
    subscriber: str  # the function's dotted name; "" for a group not this app's
    pending: int  # read by a relay and not acknowledged yet
    lag: int | None  # entries not read yet (None: Redis cannot tell)


@dataclass(frozen=True, slots=True)
class EventSummary:
    """One event stream: its length, its dead stream's length and its groups."""

    event: str
    length: int
    dead: int
    groups: list[GroupSummary]


@dataclass(frozen=True, slots=True)
class Placed:
    """What became of one `EnqueueRequest`."""

    job_id: str  # the request's own id, or the id of the job holding its unique key
    stored: bool  # False: a replayed id, or a unique key another job holds
    #: Stored as scheduled rather than queued: the enqueue script decides, with
    #: the clock of the write (a job that waited for a commit may be due by then).
    scheduled: bool = False


class Cancelled(enum.IntEnum):
    """What `JobStore.cancel` did, as `cancel_job.lua` reports it."""

    ENDED = 1  # it was waiting; now it is cancelled
    REQUESTED = 2  # it is active; its cancel_requested flag is set
    ALREADY_FINISHED = 0  # it had ended; nothing changed


@dataclass(frozen=True, slots=True)
class Damaged:
    """A claimed id whose hash cannot be run: gone, or not a valid job."""

    # What could be read, enough to record the job's end: the claimed id and
    # queue, `func` ("?" if unreadable), `attempts` (0 if unreadable) and
    # max_attempts=1.
    job: Job
    reason: InvalidJob | None  # None: the id had no hash (nothing to record)


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one claimed attempt ended, to be recorded by `JobStore.finish`."""

    job_id: str
    queue: str
    attempt: int
    status: str  # a JobStatus value, or "requeued"
    ttl_ms: int = 0
    due_ms: int = 0
    result_json: str = ""
    error: JobError | None = None

    def script_args(self) -> list[str | int]:
        error = self.error or JobError("", "", "")
        return [
            self.job_id,
            self.attempt,
            self.status,
            self.due_ms,
            self.ttl_ms,
            self.result_json,
            error.exc_class,
            error.message,
            error.traceback,
        ]


@dataclass(frozen=True, slots=True)
class CronState:
    """What Redis holds about one cron entry (None: nothing yet)."""

    handled_until: datetime | None  # fire times up to here were claimed or skipped
    last_fired: datetime | None  # the fire time of the last job enqueued
    seen: datetime | None  # when a scheduler that knows the entry last said so


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """What a worker publishes about itself while it lives."""

    worker_id: str
    hostname: str
    pid: int
    queues: tuple[str, ...]
    concurrency: int
    started_ms: int


@dataclass(frozen=True, slots=True)
class DurabilityProblem:
    """A Redis setting that can lose jobs; `code` is "aof", "eviction" or "unknown".

    `setting` is the short form for the worker's one-line warning, as in
    ``appendonly=no``; `message` and `hint` explain it (``check --deploy``).
    """

    code: str
    message: str
    hint: str
    setting: str = ""


_DURABILITY_HINT = (
    "Recommended: appendonly yes, appendfsync everysec (or always), "
    "maxmemory-policy noeviction; see docs/guarantees.md."
)


@dataclass(frozen=True, slots=True)
class Persistence:
    """Redis's persistence and eviction settings; None where the server won't say."""

    aof_enabled: bool | None
    appendfsync: str | None
    maxmemory_policy: str | None

    def problems(self) -> list[DurabilityProblem]:
        """What these settings put at risk, in words for a log line or a check."""
        found: list[DurabilityProblem] = []
        if self.aof_enabled is None:
            found.append(
                DurabilityProblem(
                    "unknown",
                    "Redis did not report whether append-only persistence is on "
                    "(CONFIG and INFO refused).",
                    _DURABILITY_HINT,
                    "persistence=unknown",
                )
            )
        elif not self.aof_enabled:
            found.append(
                DurabilityProblem(
                    "aof",
                    "Redis has append-only persistence (AOF) off: a restart loses "
                    "every job written since the last RDB snapshot, if any, "
                    "including queued, scheduled and running ones.",
                    _DURABILITY_HINT,
                    "appendonly=no",
                )
            )
        policy = self.maxmemory_policy
        if policy and policy != "noeviction":
            if policy.startswith("volatile-"):
                risk = (
                    "it evicts keys that have a TTL: finished jobs and their "
                    "results, dead jobs and worker records may vanish before their "
                    "TTL; queued, scheduled and running jobs have no TTL and stay."
                )
            else:
                risk = "it may evict any key, including queued and running jobs."
            found.append(
                DurabilityProblem(
                    "eviction",
                    f"Redis maxmemory-policy is {policy!r}: once Redis reaches "
                    f"maxmemory {risk}",
                    _DURABILITY_HINT,
                    f"maxmemory-policy={policy}",
                )
            )
        return found
