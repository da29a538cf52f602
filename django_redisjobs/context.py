"""The running job's context, for job code: id, attempt, progress."""

import contextvars
from dataclasses import dataclass

from .exceptions import NoCurrentJob
from .queue import JobStore


@dataclass(frozen=True)
class JobContext:
    """Facts about the running attempt; use `id` and `attempt` for idempotency keys."""

    id: str
    queue: str
    func: str
    attempt: int
    max_attempts: int
    store: JobStore | None  # None in eager mode: nothing is in Redis

    def set_progress(self, fraction: float) -> None:
        """Record progress between 0 and 1; `JobHandle.progress` shows it."""
        fraction = min(max(float(fraction), 0.0), 1.0)
        if self.store is not None:
            self.store.set_progress(self.id, self.queue, fraction)


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
