"""`JobHandle`: a job's id plus its last-read state, and a way to wait for its end."""

import dataclasses
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from .exceptions import JobDoesNotExist, WaitTimeout
from .job import Attempt, Job, JobError, JobStatus, now_epoch_ms
from .queue import Cancelled, get_store


class JobHandle:
    """Refers to one job. Its state is a snapshot: call `refresh()` to read it again.

    A handle made inside `transaction.atomic()` says `PENDING` until the transaction
    commits; if it rolls back, the job never reaches Redis and stays `PENDING`.
    """

    def __init__(self, job: Job, *, in_redis: bool = True) -> None:
        self._job = job
        self._in_redis = in_redis

    def __repr__(self) -> str:
        status = self.status.value
        return f"<JobHandle id={self.id!r} queue={self.queue!r} status={status}>"

    @classmethod
    def load(cls, job_id: str, queue: str | None = None) -> "JobHandle":
        """Read a job by id; raise `JobDoesNotExist` if it is not (or no longer) there.

        Without `queue`, every known queue is searched (one round trip). Raises
        `RedisUnavailable` when Redis cannot be reached.
        """
        store = get_store()
        return cls(store.get(job_id, queue or store.locate(job_id)))

    @property
    def id(self) -> str:
        return self._job.id

    @property
    def queue(self) -> str:
        return self._job.queue

    @property
    def job(self) -> Job:
        """The full snapshot, with times, worker and traceback."""
        return self._job

    @property
    def status(self) -> JobStatus:
        return self._job.status

    @property
    def attempts(self) -> int:
        return self._job.attempts

    @property
    def progress(self) -> float:
        return self._job.progress

    @property
    def progress_message(self) -> str:
        """What the job's code said with its last `set_progress` call."""
        return self._job.progress_message

    @property
    def history(self) -> list[Attempt]:
        """The ended attempts, oldest first: worker, times, outcome, error summary.

        At most `ATTEMPT_HISTORY_LIMIT` (25) are kept. A requeued job (its worker
        stopped before the job ended) used no attempt and adds none.
        """
        return self._job.history

    @property
    def result(self) -> Any:
        """The return value once `SUCCEEDED`; None before."""
        if self._job.status is not JobStatus.SUCCEEDED:
            return None
        return self._job.result

    @property
    def error(self) -> JobError | None:
        """What the last failed attempt raised; None for a job that succeeded."""
        if self._job.status is JobStatus.SUCCEEDED:
            return None
        return self._job.error

    @property
    def is_finished(self) -> bool:
        return self._job.status.is_finished

    def refresh(self) -> "JobHandle":
        """Read the job's current state from Redis; returns the handle itself.

        Raises `JobDoesNotExist` once the job has expired (after its result TTL),
        and `RedisUnavailable` when Redis cannot be reached.
        """
        if not self._in_redis:
            return self
        try:
            self._job = get_store().get(self.id, self.queue)
        except JobDoesNotExist:
            if self._job.status is not JobStatus.PENDING:
                raise
        return self

    def cancel(self) -> bool:
        """Cancel the job; return False if it had already ended (nothing changes).

        A queued, scheduled or retrying job is taken out of its queue and ends
        `cancelled` at once. An active job gets a cancel flag: it ends `cancelled`
        if its code honours the flag (`current_job().is_cancelled()`, then raise
        `JobCancelled`), if its worker has not started it yet, or if it would be
        retried or run again; otherwise it ends as it would have. A `pending` handle
        (inside a transaction) is cancelled locally and the job is never written.
        The handle is refreshed. Raises `JobDoesNotExist` for a job no longer in
        Redis and `RedisUnavailable` when Redis cannot be reached.
        """
        if not self._in_redis:
            if self._job.status is not JobStatus.PENDING:
                return False  # eager mode: the job already ran
            self._job = dataclasses.replace(self._job, status=JobStatus.CANCELLED)
            return True
        done = get_store().cancel(self.id, self.queue, now_epoch_ms())
        self.refresh()
        return done is not Cancelled.ALREADY_FINISHED

    def retry(self) -> bool:
        """Run a dead, cancelled or retrying job again, now; False (nothing
        changes) when the job is waiting, running or succeeded.

        The job keeps its id, arguments and attempt history; its attempt count
        starts again from 0 and its last error, result and progress are cleared
        (docs/jobs.md, "Retrying by hand"). The handle is refreshed. Raises
        `JobDoesNotExist` for a job no longer in Redis and `RedisUnavailable`
        when Redis cannot be reached.
        """
        if not self._in_redis:
            return False
        (code,) = get_store().retry([self.id], self.queue, now_epoch_ms())
        if code == -1:
            raise JobDoesNotExist(
                f"Job {self.id!r} does not exist in queue {self.queue!r}."
            )
        self.refresh()
        return code == 1

    def wait(self, timeout: timedelta = timedelta(seconds=30)) -> "JobHandle":
        """Block until the job succeeds, dies or is cancelled; returns the handle.

        Listens on the job's pub/sub channel rather than polling. Raises
        `WaitTimeout` when `timeout` passes first, and `RedisUnavailable` when
        Redis cannot be reached.
        """
        if self.is_finished or not self._in_redis:
            return self
        deadline = time.monotonic() + timeout.total_seconds()
        with get_store().watch_end(self.id, self.queue) as end:
            # Subscribed first, then read: an end published in between is not missed.
            while not self.refresh().is_finished:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise WaitTimeout(
                        f"Job {self.id!r} is still {self.status.value} after "
                        f"{timeout.total_seconds():g} s."
                    )
                end.wait(min(remaining, 5.0))
        return self

    def stream(
        self, timeout: timedelta = timedelta(minutes=5)
    ) -> Iterator["JobHandle"]:
        """Yield the refreshed handle now, again each time the job reports
        progress, and a last time when it ends; for a view that streams a job's
        progress to a browser.

        Listens on the job's channel, which announces each `set_progress` and
        the end: no polling. Updates that come faster than a read of the job may
        be seen as one (the latest). Raises `WaitTimeout` when `timeout` passes
        before the end, and `RedisUnavailable` when Redis cannot be reached.
        """
        if self.is_finished or not self._in_redis:
            yield self
            return
        deadline = time.monotonic() + timeout.total_seconds()
        with get_store().watch_end(self.id, self.queue) as channel:
            # Subscribed first, then read: an update in between is not missed.
            seen = None
            while True:
                self.refresh()
                state = (self.status, self.progress, self.progress_message)
                if state != seen:
                    seen = state
                    yield self
                if self.is_finished:
                    return
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise WaitTimeout(
                        f"Job {self.id!r} is still {self.status.value} after "
                        f"{timeout.total_seconds():g} s."
                    )
                channel.wait(min(remaining, 5.0))

    def mark_enqueued(self, job: Job) -> None:
        """Called once the job is in Redis (now, or when its transaction commits)."""
        self._job = job
        self._in_redis = True

    def mark_committed(self) -> None:
        """Called when the job's outbox row committed but is not in Redis yet: the
        handle stays pending, and `refresh()` and `wait()` look for it in Redis
        from now on, where the relay will write it."""
        self._in_redis = True

    def mark_local(self, job: Job) -> None:
        """Eager mode: the job ran inline and lives only in this handle."""
        self._job = job
        self._in_redis = False
