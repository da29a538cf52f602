"""The running job's context, for job code: id, attempt, progress, cancellation."""

import contextvars
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .exceptions import NoCurrentJob, RedisUnavailable
from .job import Job
from .queue import JobStore

logger = logging.getLogger(__name__)


@dataclass
class CancelCheck:
    """What `JobContext.is_cancelled()` last read, so a job that asks in a tight
    loop reads Redis at most once per `max_age_s` (a cancel is final: once seen,
    it is never read again)."""

    max_age_s: float = 0.5
    clock: Callable[[], float] = time.monotonic
    cancelled: bool = False
    read_at: float | None = None

    def due(self) -> bool:
        if self.cancelled:
            return False
        return self.read_at is None or self.clock() - self.read_at >= self.max_age_s


@dataclass(frozen=True)
class JobContext:
    """Facts about the running attempt; use `id` and `attempt` for idempotency keys."""

    id: str
    queue: str
    func: str
    attempt: int
    max_attempts: int
    store: JobStore | None  # None in eager mode: nothing is in Redis
    cancel_check: CancelCheck = field(
        default_factory=CancelCheck, compare=False, repr=False
    )
    worker: str = ""  # the worker running the attempt (it holds the lease)
    #: The job as its worker claimed it for this attempt (times, worker, earlier
    #: attempts): what an adapter such as the django.tasks backend describes the
    #: running attempt from, without a read from Redis.
    job: Job | None = field(default=None, compare=False, repr=False)

    def set_progress(self, fraction: float, message: str = "") -> None:
        """Record progress between 0 and 1, with an optional message for people;
        `JobHandle.progress` and `.progress_message` show it, and the job's
        channel announces it (`JobHandle.stream`).

        It is written only while this attempt holds the job's lease: never after
        the job ended or its lease was recovered. If Redis cannot be reached, the
        progress is not stored (logged at WARNING) and the job goes on: progress
        is a hint, not part of the work.
        """
        fraction = min(max(float(fraction), 0.0), 1.0)
        if self.store is None:
            return
        try:
            self.store.set_progress(
                self.id, self.queue, (self.worker, self.attempt), fraction, message
            )
        except RedisUnavailable as err:
            logger.warning("could not store progress job id=%s: %s", self.id, err)

    def is_cancelled(self) -> bool:
        """Tell whether `JobHandle.cancel()` was called for this job while it ran.

        Reads Redis at most every half second; a cancel seen once stays seen. The
        job honours it by raising `JobCancelled`, which ends the job as cancelled.
        If Redis cannot be reached, the last answer stands (logged at WARNING).
        Always False in eager mode.
        """
        check = self.cancel_check
        if self.store is None or not check.due():
            return check.cancelled
        try:
            check.cancelled = self.store.cancel_requested(self.id, self.queue)
        except RedisUnavailable as err:
            logger.warning("could not read cancel flag job id=%s: %s", self.id, err)
        check.read_at = check.clock()
        return check.cancelled


_current: contextvars.ContextVar[JobContext] = contextvars.ContextVar(
    "django_redisjobs_current_job"
)


def current_job() -> JobContext:
    """Return the context of the job running here; raise `NoCurrentJob` outside one."""
    try:
        return _current.get()
    except LookupError:
        raise NoCurrentJob("current_job() was called outside a running job.") from None


def activate(context: JobContext) -> contextvars.Token[JobContext]:
    return _current.set(context)


def deactivate(token: contextvars.Token[JobContext]) -> None:
    _current.reset(token)
