"""Runs one attempt of a job and decides what it leads to.

Shared by the worker and by eager mode, so a job behaves the same in both: the same
context, signals, JSON check of the result and retry decision. Database connection
checks belong to the worker's threads (pool.py): eager mode runs in the caller's
thread, whose connection must not be closed under it.
"""

import asyncio
import dataclasses
import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from . import serialization, signals
from .conf import Settings
from .context import JobContext, activate, deactivate
from .exceptions import JobCancelled, JobTimeout, RedisUnavailable, SerializationError
from .job import Job, JobError, JobStatus, duration_ms, now_epoch_ms, to_ms
from .queue import JobStore, Outcome
from .registry import FunctionSpec
from .retry import RetryPolicy

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AttemptResult:
    """How one attempt ended: the next status and what to store."""

    job: Job
    status: JobStatus  # SUCCEEDED, RETRYING, DEAD or CANCELLED
    result_json: str = ""
    error: JobError | None = None
    retry_in: timedelta | None = None
    duration: timedelta = timedelta(0)

    def job_after(self) -> Job:
        """The job as it stands after this attempt (for eager mode's handles)."""
        return dataclasses.replace(
            self.job,
            status=self.status,
            result_json=self.result_json,
            error=self.error or self.job.error,
            finished_at=None
            if self.status is JobStatus.RETRYING
            else datetime.now(UTC),
        )

    def outcome(self, settings: Settings, now_ms: int) -> Outcome:
        """The record `JobStore.finish` writes for this attempt."""
        ttl = (
            settings.dead_ttl if self.status is JobStatus.DEAD else self.job.result_ttl
        )
        return Outcome(
            job_id=self.job.id,
            queue=self.job.queue,
            attempt=self.job.attempts,
            status=self.status.value,
            ttl_ms=duration_ms(ttl or settings.result_ttl),
            due_ms=now_ms + duration_ms(self.retry_in) if self.retry_in else now_ms,
            result_json=self.result_json,
            error=self.error,
        )


def error_record(exc: BaseException) -> JobError:
    """Describe `exc` as text: class path, message and formatted traceback."""
    cls = type(exc)
    return JobError(
        exc_class=f"{cls.__module__}.{cls.__qualname__}",
        message=str(exc),
        traceback="".join(traceback.format_exception(exc)),
    )


def failed_before_running(job: Job, exc: BaseException) -> AttemptResult:
    """A job that cannot run at all (unknown function, corrupt hash) goes dead."""
    return AttemptResult(job, JobStatus.DEAD, error=error_record(exc))


def default_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=settings.max_attempts,
        backoff_base=settings.backoff_base,
        backoff_max=settings.backoff_max,
        jitter=settings.backoff_jitter,
    )


def _conclude(
    spec: FunctionSpec,
    job: Job,
    settings: Settings,
    outcome: tuple[Any, BaseException | None],
    started: float,
) -> AttemptResult:
    value, exc = outcome
    duration = timedelta(seconds=time.perf_counter() - started)
    if exc is None:
        try:
            result_json = serialization.encode(value, "The return value")
        except SerializationError as err:
            return AttemptResult(
                job, JobStatus.DEAD, error=error_record(err), duration=duration
            )
        return AttemptResult(job, JobStatus.SUCCEEDED, result_json, duration=duration)
    if isinstance(exc, JobCancelled):
        # The job honoured a cancel (or cancelled itself): no retry.
        return AttemptResult(
            job, JobStatus.CANCELLED, error=error_record(exc), duration=duration
        )
    policy = dataclasses.replace(
        spec.retry_policy(default_policy(settings)), max_attempts=job.max_attempts
    )
    error = error_record(exc)
    if policy.should_retry(exc, job.attempts):
        delay = policy.delay_for(exc, job.attempts)
        return AttemptResult(
            job, JobStatus.RETRYING, error=error, retry_in=delay, duration=duration
        )
    return AttemptResult(job, JobStatus.DEAD, error=error, duration=duration)


def _context(job: Job, store: JobStore | None) -> JobContext:
    return JobContext(
        job.id, job.queue, job.func, job.attempts, job.max_attempts, store
    )


def send_signal(signal: Any, job: Job, **kwargs: Any) -> None:
    """Send to every receiver; Django logs (and skips) a receiver that raises."""
    signal.send_robust(sender=job.func, job=job, **kwargs)


def _finished(result: AttemptResult) -> AttemptResult:
    send_signal(
        signals.job_finished,
        result.job,
        outcome=result.status,
        error=result.error,
        duration=result.duration,
    )
    return result


#: A claimed job that waited this long for a thread is checked for a cancel request
#: before it starts. One that starts sooner counts as started at its claim: reading
#: the flag for it too would cost a round trip per job (about 40 % of the
#: throughput of jobs that do nothing) for a window of a few ms.
CANCEL_CHECK_AFTER_MS = 50


def waited_for_a_thread(job: Job) -> bool:
    """Tell whether `job` was claimed at least `CANCEL_CHECK_AFTER_MS` ago."""
    if job.started_at is None:
        return False
    return now_epoch_ms() - to_ms(job.started_at) >= CANCEL_CHECK_AFTER_MS


def cancelled_before_start(job: Job, store: JobStore | None) -> AttemptResult | None:
    """A claimed job whose cancel was requested while it waited does not run.

    A prefetched job may wait for a thread for as long as the jobs ahead of it run;
    one that waited (`waited_for_a_thread`) costs one HGET here. If Redis does not
    answer, the job runs (its own `is_cancelled()` checks still apply).
    """
    if store is None or not waited_for_a_thread(job):
        return None
    try:
        requested = store.cancel_requested(job.id, job.queue)
    except RedisUnavailable as err:
        logger.warning("could not read cancel flag job id=%s: %s", job.id, err)
        return None
    if not requested:
        return None
    reason = JobCancelled(f"Job {job.id!r} was cancelled before it started.")
    return _finished(
        AttemptResult(job, JobStatus.CANCELLED, error=error_record(reason))
    )


def run_sync(
    spec: FunctionSpec,
    job: Job,
    settings: Settings,
    store: JobStore | None,
    func: Callable[..., Any] | None = None,
) -> AttemptResult:
    """Run a synchronous job in this thread (unless it was cancelled meanwhile).

    `func` stands in for ``spec.func`` (the worker's pool wraps it per attempt).
    """
    if (cancelled := cancelled_before_start(job, store)) is not None:
        return cancelled
    send_signal(signals.job_started, job)
    token = activate(_context(job, store))
    started = time.perf_counter()
    try:
        outcome: tuple[Any, BaseException | None] = (
            (func or spec.func)(*job.args, **job.kwargs),
            None,
        )
    except JobTimeout as exc:
        # The watchdog raises the bare class in this thread; give it its message.
        exc.args = (str(timeout_error(job)),)
        outcome = (None, exc)
    except BaseException as exc:  # SystemExit from job code must not end the thread
        outcome = (None, exc)
    finally:
        deactivate(token)
    return _finished(_conclude(spec, job, settings, outcome, started))


async def run_async(
    spec: FunctionSpec, job: Job, settings: Settings, store: JobStore | None
) -> AttemptResult:
    """Run a coroutine job on the running event loop, within its timeout (unless it
    was cancelled meanwhile)."""
    if store is not None and waited_for_a_thread(job):
        # In a thread: a Redis round trip must not hold up the other coroutines.
        cancelled = await asyncio.to_thread(cancelled_before_start, job, store)
        if cancelled is not None:
            return cancelled
    send_signal(signals.job_started, job)
    token = activate(_context(job, store))
    started = time.perf_counter()
    timeout = job.timeout.total_seconds() if job.timeout else None
    try:
        value = await asyncio.wait_for(spec.func(*job.args, **job.kwargs), timeout)
        outcome: tuple[Any, BaseException | None] = (value, None)
    except TimeoutError:
        outcome = (None, timeout_error(job))
    except BaseException as exc:  # CancelledError and SystemExit end the attempt too
        outcome = (None, exc)
    finally:
        deactivate(token)
    return _finished(_conclude(spec, job, settings, outcome, started))


def timeout_error(job: Job) -> JobTimeout:
    seconds = job.timeout.total_seconds() if job.timeout else 0
    return JobTimeout(f"Job {job.id!r} ran past its timeout of {seconds:g} s.")


def run_inline(spec: FunctionSpec, job: Job, settings: Settings) -> AttemptResult:
    """Eager mode: run attempts back to back (no backoff waits) until one ends it."""
    while True:
        job = dataclasses.replace(
            job, attempts=job.attempts + 1, status=JobStatus.ACTIVE
        )
        if spec.is_async:
            result = asyncio.run(run_async(spec, job, settings, None))
        else:
            result = run_sync(spec, job, settings, None)
        if result.status is not JobStatus.RETRYING:
            return result


def log_attempt(log: logging.Logger, result: AttemptResult) -> None:
    """Log how an attempt ended: ERROR when dead, WARNING when retrying, else INFO."""
    job = result.job
    if result.status is JobStatus.DEAD and result.error is not None:
        log.error(
            "job dead id=%s func=%s queue=%s attempt=%d error=%s: %s\n%s",
            job.id,
            job.func,
            job.queue,
            job.attempts,
            result.error.exc_class,
            result.error.message,
            result.error.traceback,
        )
        return
    if result.status is JobStatus.RETRYING and result.error is not None:
        log.warning(
            "job retrying id=%s func=%s queue=%s attempt=%d retry_in_s=%.1f "
            "error=%s: %s",
            job.id,
            job.func,
            job.queue,
            job.attempts,
            result.retry_in.total_seconds() if result.retry_in else 0.0,
            result.error.exc_class,
            result.error.message,
        )
        return
    log.info(
        "job %s id=%s func=%s queue=%s attempt=%d duration_ms=%.1f",
        result.status.value,
        job.id,
        job.func,
        job.queue,
        job.attempts,
        result.duration.total_seconds() * 1000,
    )
