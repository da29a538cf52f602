"""The rules for a job's options and for how a failed attempt ends, stated once.

Pure: no Redis, no database, no clock. Every caller passes what a rule depends on
(the function's spec, the settings, the attempt number, a random source), so the
same inputs give the same answer in `.delay()`, the cron scheduler, the thread
worker, eager mode and a process supervisor's recovery.

A job's options come from three layers; the first that sets one wins:

1. the call: ``using()`` and the per-call arguments of ``enqueue()``, or a cron
   entry's ``queue`` (`JobOptions`);
2. the decorator, ``@background(...)`` (`FunctionSpec`);
3. ``REDISJOBS`` (`Settings`), or the built-in default where no setting exists
   (`DEFAULT_PRIORITY`, not unique).

The options stored in the job (queue, priority, max_attempts, timeout,
result_ttl) are fixed at enqueue by `resolve_options`. The retry options
(backoff, jitter, ``retry_on``, ``no_retry_on``) are not stored: the worker reads
them from its own copy of the function when an attempt fails (`retry_policy`).
"""

import enum
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from .conf import Settings
from .exceptions import JobCancelled
from .job import DEFAULT_PRIORITY, MAX_DURATION, Job, JobStatus, from_ms, new_job_id
from .registry import FunctionSpec
from .retry import RetryPolicy


@dataclass(frozen=True, slots=True)
class JobOptions:
    """Options set for one call or by ``using()``; None leaves the decision to the
    decorator, then the settings."""

    queue: str | None = None
    priority: int | None = None
    max_attempts: int | None = None
    timeout: timedelta | None = None
    result_ttl: timedelta | None = None
    unique: bool | None = None
    unique_for: timedelta | None = None


NO_OPTIONS = JobOptions()


@dataclass(frozen=True, slots=True)
class JobDefaults:
    """A job's options with every layer applied: what the job is enqueued with.

    `timeout` None means no limit. `unique` says whether the job takes a unique
    key made from its arguments; `unique_for` is how long that key stays held
    after enqueue (None: until the job ends).
    """

    queue: str
    priority: int
    max_attempts: int
    timeout: timedelta | None
    result_ttl: timedelta
    unique: bool
    unique_for: timedelta | None


def new_job(
    func: str,
    defaults: JobDefaults,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    now_ms: int,
    start_ms: int,
    run_at: datetime | None,
    unique_key: str = "",
    unique_until: datetime | None = None,
) -> Job:
    """A new job of `func` with `defaults`, enqueued at `now_ms`: scheduled when
    it starts later (`start_ms`), else queued. Both enqueue APIs build it here;
    `run_at` is theirs to choose (`.delay()` keeps it only for a later start,
    django.tasks always, so the task reads back its ``run_after``)."""
    return Job(
        id=new_job_id(now_ms),
        func=func,
        queue=defaults.queue,
        args=list(args),
        kwargs=dict(kwargs),
        status=JobStatus.SCHEDULED if start_ms > now_ms else JobStatus.QUEUED,
        priority=defaults.priority,
        max_attempts=defaults.max_attempts,
        timeout=defaults.timeout,
        result_ttl=defaults.result_ttl,
        enqueued_at=from_ms(now_ms),
        run_at=run_at,
        unique_key=unique_key,
        unique_until=unique_until,
    )


def resolve_options(
    spec: FunctionSpec, overrides: JobOptions, settings: Settings
) -> JobDefaults:
    """The options of a job of `spec`'s function, each taken from `overrides`,
    else the decorator (`spec`), else `settings`.

    `unique` set in `overrides` wins; otherwise a job is unique if the decorator
    says ``unique=True`` or a ``unique_for`` is set (by the call or the
    decorator). The values
    are used as given: validation happens at decoration and enqueue
    (`validation`), and `Settings` is validated by `conf`.
    """
    unique_for = _layered(overrides.unique_for, default=spec.unique_for)
    if overrides.unique is not None:
        unique = overrides.unique
    else:
        unique = spec.unique or unique_for is not None
    return JobDefaults(
        queue=_layered(overrides.queue, spec.queue, default=settings.default_queue),
        priority=_layered(overrides.priority, spec.priority, default=DEFAULT_PRIORITY),
        max_attempts=_layered(
            overrides.max_attempts, spec.max_attempts, default=settings.max_attempts
        ),
        timeout=_layered(overrides.timeout, spec.timeout, default=settings.timeout),
        result_ttl=_layered(
            overrides.result_ttl, spec.result_ttl, default=settings.result_ttl
        ),
        unique=unique,
        unique_for=unique_for,
    )


def retry_policy(
    spec: FunctionSpec | None, job_max_attempts: int, settings: Settings
) -> RetryPolicy:
    """How failures of a job are retried: the decorator's backoff, jitter,
    ``retry_on`` and ``no_retry_on`` over the settings' defaults.

    The attempt limit is the job's own `job_max_attempts` (stored at enqueue),
    never the decorator's or the settings' current value: a deploy that changes
    ``max_attempts`` does not change jobs already enqueued. A `spec` of None means
    the function is unknown in this process (a process child's job seen only by
    its supervisor, say): the settings' defaults apply, and every exception is
    retried while attempts remain.
    """
    base = RetryPolicy(
        max_attempts=job_max_attempts,
        backoff_base=settings.backoff_base,
        backoff_max=settings.backoff_max,
        jitter=settings.backoff_jitter,
    )
    if spec is None:
        return base
    return RetryPolicy(
        max_attempts=job_max_attempts,
        backoff_base=_layered(spec.backoff_base, default=base.backoff_base),
        backoff_max=_layered(spec.backoff_max, default=base.backoff_max),
        jitter=_layered(spec.jitter, default=base.jitter),
        retry_on=spec.retry_on,
        no_retry_on=spec.no_retry_on,
    )


class FailedAt(enum.Enum):
    """Where an attempt failed, which decides whether a retry can help."""

    #: The function raised, or ran past its timeout: the retry policy decides.
    RUN = "run"
    #: The function returned a value that cannot be stored (not JSON): running it
    #: again would redo its work and fail the same way.
    RESULT = "result"
    #: The job could not start: its function is unknown here or its hash is
    #: corrupt. Nothing of it ran and nothing would change on another attempt.
    LOAD = "load"


@dataclass(frozen=True, slots=True)
class Verdict:
    """How an attempt that did not succeed ends.

    `status` is `JobStatus.RETRYING`, `DEAD` or `CANCELLED`; `retry_in` is the
    wait before the next attempt when RETRYING (from 0 to `MAX_DURATION`), else
    None.
    """

    status: JobStatus
    retry_in: timedelta | None = None


def after_failure(
    exc: BaseException,
    attempt: int,
    policy: RetryPolicy,
    *,
    failed_at: FailedAt = FailedAt.RUN,
    rand: Callable[[], float] = random.random,
) -> Verdict:
    """Decide how attempt number `attempt` (from 1) that ended with `exc` ends.

    In order: `JobCancelled` (the job honoured a cancel, or cancelled itself)
    gives CANCELLED, wherever it came from; a failure at `FailedAt.RESULT` or
    `FailedAt.LOAD` gives DEAD; otherwise `policy.should_retry` decides between
    RETRYING, after `policy.delay_for` (jittered with `rand`, which returns a
    float in [0, 1)), and DEAD. A timed-out attempt is a RUN failure with a
    `JobTimeout`. Exceptions outside `Exception` (SystemExit, a cancelled
    coroutine) are retried only when a ``retry_on`` class matches them.

    A wait that `Retry(delay=...)` asks for is kept within 0 and `MAX_DURATION`,
    so the due time it leads to can always be stored and read back.
    """
    if isinstance(exc, JobCancelled):
        return Verdict(JobStatus.CANCELLED)
    if failed_at is not FailedAt.RUN or not policy.should_retry(exc, attempt):
        return Verdict(JobStatus.DEAD)
    wait = policy.delay_for(exc, attempt, rand)
    return Verdict(JobStatus.RETRYING, min(max(wait, timedelta(0)), MAX_DURATION))


def end_ttl(
    status: JobStatus, job_result_ttl: timedelta | None, settings: Settings
) -> timedelta:
    """How long a job's hash stays in Redis once it ends with `status`.

    A DEAD job keeps its error for ``DEAD_TTL_S`` (`settings.dead_ttl`). Any other
    end (SUCCEEDED, CANCELLED) keeps the job's own `result_ttl` (`job_result_ttl`,
    stored at enqueue), else ``RESULT_TTL_S``. The same holds for a job that a
    stopping worker gives back (the "requeued" outcome: pass `JobStatus.QUEUED`):
    the TTL applies only if the job ends there, its cancel having been asked.
    """
    if status is JobStatus.DEAD:
        return settings.dead_ttl
    return job_result_ttl or settings.result_ttl


T = TypeVar("T")  # not PEP 695 syntax: the package supports Python 3.11


def _layered(*layers: T | None, default: T) -> T:
    """The first of `layers` that is set (not None), else `default`."""
    for value in layers:
        if value is not None:
            return value
    return default
