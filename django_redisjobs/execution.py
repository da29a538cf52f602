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
from .policy import FailedAt, after_failure, end_ttl, retry_policy
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
            # As finish_jobs.lua stores it for a worker's job.
            progress=1.0 if self.status is JobStatus.SUCCEEDED else self.job.progress,
            finished_at=None
            if self.status is JobStatus.RETRYING
            else datetime.now(UTC),
        )

    def outcome(self, settings: Settings, now_ms: int) -> Outcome:
        """The record `JobStore.finish` writes for this attempt."""
        ttl = end_ttl(self.status, self.job.result_ttl, settings)
        return Outcome(
            job_id=self.job.id,
            queue=self.job.queue,
            attempt=self.job.attempts,
            status=self.status.value,
            ttl_ms=duration_ms(ttl),
            due_ms=now_ms + duration_ms(self.retry_in) if self.retry_in else now_ms,
            result_json=self.result_json,
            error=self.error,
        )


def error_record(exc: BaseException) -> JobError:
    """Describe `exc` as text: class path, message and formatted traceback.

    Job code controls the message, so it is made storable here, before the
    outcome reaches the recorder: a lone surrogate (which UTF-8 cannot carry)
    becomes its escape, and a ``__str__`` that raises gives a placeholder.
    """
    cls = type(exc)
    try:
        message = str(exc)
    except Exception:
        message = f"<unprintable {cls.__qualname__}>"
    try:
        formatted = "".join(traceback.format_exception(exc))
    except Exception:
        formatted = ""
    return JobError(
        exc_class=storable_text(f"{cls.__module__}.{cls.__qualname__}"),
        message=storable_text(message),
        traceback=storable_text(formatted),
    )


def storable_text(text: str) -> str:
    """`text` with what UTF-8 cannot encode (lone surrogates) escaped."""
    if text.isascii():
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def worker_fault(job: Job, err: BaseException) -> AttemptResult:
    """The worker's own code failed around an attempt of `job` (not the job's
    code, whose errors `run_sync` and `run_async` catch): log it with its
    traceback, and end the job dead with that error, so it never stays active."""
    logger.error(
        "worker failed around an attempt, the job ends dead id=%s func=%s "
        "queue=%s attempt=%d",
        job.id,
        job.func,
        job.queue,
        job.attempts,
        exc_info=err,
    )
    return AttemptResult(job, JobStatus.DEAD, error=error_record(err))


def failed_before_running(job: Job, exc: BaseException) -> AttemptResult:
    """A job that cannot run at all (unknown function, corrupt hash): the policy
    makes it dead, since another attempt would fail the same way."""
    verdict = after_failure(exc, job.attempts, RetryPolicy(), failed_at=FailedAt.LOAD)
    return AttemptResult(job, verdict.status, error=error_record(exc))


def _succeeded(
    spec: FunctionSpec, job: Job, settings: Settings, value: Any, started: float
) -> AttemptResult:
    """The attempt returned `value`: store it, or fail the attempt (not to be
    retried: it would redo the work and fail the same way) if JSON cannot hold it.
    """
    try:
        result_json = serialization.encode(value, "The return value")
    except SerializationError as err:
        return _failed(spec, job, settings, err, started, FailedAt.RESULT)
    duration = timedelta(seconds=time.perf_counter() - started)
    return _finished(
        spec, AttemptResult(job, JobStatus.SUCCEEDED, result_json, duration=duration)
    )


def _failed(
    spec: FunctionSpec,
    job: Job,
    settings: Settings,
    exc: BaseException,
    started: float,
    failed_at: FailedAt = FailedAt.RUN,
) -> AttemptResult:
    """The attempt ended with `exc`: the policy decides what follows.

    Called from inside the handler of `exc`, so `_finished`'s receivers and hook
    see it in ``sys.exc_info()`` (Django's task logging reads it there).
    """
    duration = timedelta(seconds=time.perf_counter() - started)
    policy = retry_policy(spec, job.max_attempts, settings)
    verdict = after_failure(exc, job.attempts, policy, failed_at=failed_at)
    return _finished(
        spec,
        AttemptResult(
            job,
            verdict.status,
            error=error_record(exc),
            retry_in=verdict.retry_in,
            duration=duration,
        ),
    )


def _context(job: Job, store: JobStore | None) -> JobContext:
    return JobContext(
        job.id,
        job.queue,
        job.func,
        job.attempts,
        job.max_attempts,
        store,
        worker=job.worker,
        job=job,
    )


def send_signal(signal: Any, job: Job, **kwargs: Any) -> None:
    """Send to every receiver; Django logs (and skips) a receiver that raises."""
    signal.send_robust(sender=job.func, job=job, **kwargs)


def _finished(
    spec: FunctionSpec | None, result: AttemptResult, value: Any = None
) -> AttemptResult:
    """Send `job_finished`, then tell the function's `on_attempt_end` hook."""
    send_signal(
        signals.job_finished,
        result.job,
        outcome=result.status,
        error=result.error,
        duration=result.duration,
    )
    if spec is not None and spec.on_attempt_end is not None:
        try:
            spec.on_attempt_end(result.job, result.status, value, result.error)
        except Exception:
            # Like a signal receiver that raises: logged, and the outcome stands.
            logger.exception(
                "on_attempt_end hook failed id=%s func=%s", result.job.id, spec.name
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


def cancelled_before_start(
    job: Job, store: JobStore | None, spec: FunctionSpec | None = None
) -> AttemptResult | None:
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
        spec, AttemptResult(job, JobStatus.CANCELLED, error=error_record(reason))
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
    if (cancelled := cancelled_before_start(job, store, spec)) is not None:
        return cancelled
    send_signal(signals.job_started, job)
    token = activate(_context(job, store))
    started = time.perf_counter()
    try:
        value = (func or spec.func)(*job.args, **job.kwargs)
    except JobTimeout as exc:
        # The watchdog raises the bare class in this thread; give it its message.
        exc.args = (str(timeout_error(job)),)
        return _failed(spec, job, settings, exc, started)
    except BaseException as exc:  # SystemExit from job code must not end the thread
        return _failed(spec, job, settings, exc, started)
    finally:
        deactivate(token)
    return _succeeded(spec, job, settings, value, started)


async def run_async(
    spec: FunctionSpec, job: Job, settings: Settings, store: JobStore | None
) -> AttemptResult:
    """Run a coroutine job on the running event loop, within its timeout (unless it
    was cancelled meanwhile)."""
    if store is not None and waited_for_a_thread(job):
        # In a thread: a Redis round trip must not hold up the other coroutines.
        cancelled = await asyncio.to_thread(cancelled_before_start, job, store, spec)
        if cancelled is not None:
            return cancelled
    send_signal(signals.job_started, job)
    token = activate(_context(job, store))
    started = time.perf_counter()
    timeout = job.timeout.total_seconds() if job.timeout else None
    try:
        value = await asyncio.wait_for(spec.func(*job.args, **job.kwargs), timeout)
    except TimeoutError:
        return _failed(spec, job, settings, timeout_error(job), started)
    except BaseException as exc:  # CancelledError and SystemExit end the attempt too
        return _failed(spec, job, settings, exc, started)
    finally:
        deactivate(token)
    return _succeeded(spec, job, settings, value, started)


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


_CONTROL = {code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))} | {
    ord("\n"): "\\n",
    ord("\r"): "\\r",
    ord("\t"): "\\t",
}
_CONTROL_BUT_NEWLINE = {
    code: text for code, text in _CONTROL.items() if code != ord("\n")
}


def log_safe(text: str, *, keep_newlines: bool = False) -> str:
    """`text` that job code controls, fit for a log line: control characters
    (a newline that would forge a line of its own, a terminal escape) become
    visible escapes. A traceback keeps its newlines, each followed by an indent,
    so no line of it can pass for a log line of its own."""
    if text.isprintable():
        return text
    if not keep_newlines:
        return text.translate(_CONTROL)
    return text.translate(_CONTROL_BUT_NEWLINE).rstrip("\n").replace("\n", "\n    ")


def log_attempt(log: logging.Logger, result: AttemptResult) -> None:
    """Log how an attempt ended: ERROR when dead, WARNING when retrying, else INFO."""
    job = result.job
    error = result.error
    if result.status is JobStatus.DEAD and error is not None:
        log.error(
            "job dead id=%s func=%s queue=%s attempt=%d error=%s: %s\n%s",
            job.id,
            log_safe(job.func),
            job.queue,
            job.attempts,
            log_safe(error.exc_class),
            log_safe(error.message),
            log_safe(error.traceback, keep_newlines=True),
        )
        return
    if result.status is JobStatus.RETRYING and error is not None:
        log.warning(
            "job retrying id=%s func=%s queue=%s attempt=%d retry_in_s=%.1f "
            "error=%s: %s",
            job.id,
            log_safe(job.func),
            job.queue,
            job.attempts,
            result.retry_in.total_seconds() if result.retry_in else 0.0,
            log_safe(error.exc_class),
            log_safe(error.message),
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
