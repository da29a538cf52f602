"""django.tasks values to and from jobs: a `Task` call as a job, a job as a
`TaskResult`.

A job carries everything a `TaskResult` reports: its status, its times, its
arguments and result as JSON, the full error of its last failed attempt, and its
ended attempts in `Job.history` (worker, times, error class and message). The
attempt running now is not in the history yet: the claim's `worker` and
`started_at` describe it. Only the backend (`tasks_backend`) and the worker-side
runner (`task_runs`) use this module.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from .exceptions import django_tasks_missing

try:
    from django.tasks import Task, TaskResult, TaskResultStatus
    from django.tasks.base import TaskError
except ImportError as err:  # Django < 6.0 has no django.tasks
    raise django_tasks_missing() from err
from django.utils import timezone

from .conf import Settings
from .exceptions import JobCancelled
from .job import Attempt, Job, JobError, JobStatus, from_ms, now_epoch_ms
from .job import duration_ms as ms_of
from .policy import JobDefaults, JobOptions, new_job, resolve_options
from .queue import EnqueueRequest
from .registry import FunctionSpec
from .serialization import canonical, encode_arguments
from .validation import run_at_ms

_STATUSES = {
    JobStatus.PENDING: TaskResultStatus.READY,
    JobStatus.QUEUED: TaskResultStatus.READY,
    JobStatus.SCHEDULED: TaskResultStatus.READY,
    JobStatus.RETRYING: TaskResultStatus.READY,
    JobStatus.ACTIVE: TaskResultStatus.RUNNING,
    JobStatus.SUCCEEDED: TaskResultStatus.SUCCESSFUL,
    # Django has no "cancelled": a cancelled task did not succeed.
    JobStatus.DEAD: TaskResultStatus.FAILED,
    JobStatus.CANCELLED: TaskResultStatus.FAILED,
}
_FINISHED = frozenset({TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED})


def job_defaults(
    task: Task[Any, Any], spec: FunctionSpec, settings: Settings
) -> JobDefaults:
    """The options a call of `task` is enqueued with: its queue and priority over
    `spec`'s (the alias's OPTIONS), over ``REDISJOBS``."""
    # Django accepts a whole float (1.0) as a priority; the job stores an int.
    overrides = JobOptions(queue=task.queue_name, priority=int(task.priority))
    return resolve_options(spec, overrides, settings)


def request_for(
    task: Task[Any, Any],
    spec: FunctionSpec,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    defaults: JobDefaults,
) -> EnqueueRequest:
    """The job for one call of `task` with `defaults` (see `job_defaults`) and
    the task's ``run_after``.

    `args` and `kwargs` are already normalised as Django normalises them; what
    JSON still cannot carry unchanged (a key that is not a str, NaN) raises
    `SerializationError`.
    """
    args_json, kwargs_json = encode_arguments(args, kwargs)
    now_ms = now_epoch_ms()
    run_after = task.run_after
    if run_after is not None and timezone.is_naive(run_after):
        # Django accepts a naive run_after when USE_TZ is False: local time.
        run_after = timezone.make_aware(run_after)
    start_ms = run_at_ms(None, run_after, now_ms)
    unique_key, unique_until = "", None
    if defaults.unique:
        digest = hashlib.sha256(canonical([args, kwargs]).encode()).hexdigest()
        unique_key = f"{spec.name}:{digest}"
        if defaults.unique_for is not None:
            unique_until = from_ms(now_ms + ms_of(defaults.unique_for))
    # run_at is kept even when already due, so the task read back has its
    # run_after.
    run_at = from_ms(start_ms) if run_after is not None else None
    job = new_job(
        spec.name, defaults, args, kwargs, now_ms, start_ms, run_at, unique_key,
        unique_until,
    )  # fmt: skip
    return EnqueueRequest(job, args_json, kwargs_json, False)


def task_like(
    task: Task[Any, Any], job: Job, alias: str | None = None
) -> Task[Any, Any]:
    """`task` with the queue, priority and ``run_after`` `job` was enqueued with
    (and the backend `alias`, when given).

    Built without ``Task.__post_init__``: the backend validated these values when
    the job was enqueued, perhaps through another alias whose QUEUES this task's
    own alias would refuse.
    """
    backend = alias or task.backend
    if (
        task.queue_name == job.queue
        and task.priority == job.priority
        and task.run_after == job.run_at
        and task.backend == backend
    ):
        return task
    changes = {
        "queue_name": job.queue,
        "priority": job.priority,
        "run_after": job.run_at,
        "backend": backend,
    }
    copy = object.__new__(type(task))
    for field in dataclasses.fields(task):
        value = changes.get(field.name, getattr(task, field.name))
        object.__setattr__(copy, field.name, value)
    return copy


def enqueued_result(task: Task[Any, Any], job: Job, alias: str) -> TaskResult[Any, Any]:
    """The result of `job` just stored (or to be stored at commit): READY, with
    nothing run yet. What `task_result` gives for it, with less work, since
    every enqueue returns one."""
    return _built(
        task,
        job.id,
        TaskResultStatus.READY,
        job.enqueued_at,
        None,
        None,
        None,
        job.args,
        job.kwargs,
        alias,
        [],
        [],
    )


def task_result(task: Task[Any, Any], job: Job, alias: str) -> TaskResult[Any, Any]:
    """`job` as it stands, as the `TaskResult` of `task` on backend `alias`."""
    history = job.history
    running = job.status is JobStatus.ACTIVE
    status = _STATUSES[job.status]
    result = _result(
        task,
        job,
        alias,
        status,
        history,
        running=running,
        errors=errors_of(job, history),
    )
    if status is TaskResultStatus.SUCCESSFUL:
        object.__setattr__(result, "_return_value", job.result)
    return result


def finish(
    result: TaskResult[Any, Any],
    outcome: JobStatus,
    value: Any,
    error: JobError | None,
) -> None:
    """Make the RUNNING `result` of an attempt say how it ended: SUCCESSFUL with
    `value`, READY for a retry to come, else FAILED; `error` joins its errors."""
    status = _STATUSES[outcome]
    object.__setattr__(result, "status", status)
    if status in _FINISHED:
        # Aware UTC, as every time read from a job is (job.from_ms).
        object.__setattr__(result, "finished_at", datetime.now(UTC))
    if error is not None:
        result.errors.append(
            _task_error(error.exc_class, error.traceback, error.message)
        )
    if outcome is JobStatus.SUCCEEDED:
        object.__setattr__(result, "_return_value", value)


def _result(
    task: Task[Any, Any],
    job: Job,
    alias: str,
    status: TaskResultStatus,
    history: list[Attempt],
    *,
    running: bool,
    errors: list[TaskError],
) -> TaskResult[Any, Any]:
    """`running`: the claim's attempt counts (it is not in `history` yet)."""
    worker_ids = [attempt.worker for attempt in history]
    last_started = history[-1].started_at if history else None
    if running:
        worker_ids.append(job.worker)
        last_started = job.started_at
    first_started = history[0].started_at if history else last_started
    finished_at = _finished_at(job, status)
    return _built(
        task,
        job.id,
        status,
        job.enqueued_at,
        first_started,
        finished_at,
        last_started,
        job.args,
        job.kwargs,
        alias,
        errors,
        worker_ids,
    )


# The fields this module fills, in the order of Django 6.0 and 6.1's TaskResult.
_FIELDS = (
    "task",
    "id",
    "status",
    "enqueued_at",
    "started_at",
    "finished_at",
    "last_attempted_at",
    "args",
    "kwargs",
    "backend",
    "errors",
    "worker_ids",
)
_CLASS_DICT = vars(TaskResult)
_SLOTS_MATCH = (
    tuple(f.name for f in dataclasses.fields(TaskResult) if f.init) == _FIELDS
    and "_return_value" in _CLASS_DICT
)
# The slot setter of each field, as job_hash sets a Job's: TaskResult is a frozen
# dataclass with slots, and setting the slots directly skips its __setattr__ and
# the normalisation in __post_init__: a third of what its constructor costs.
_SETTERS = (
    tuple(_CLASS_DICT[name].__set__ for name in (*_FIELDS, "_return_value"))
    if _SLOTS_MATCH
    else ()
)


def _built(*values: Any) -> TaskResult[Any, Any]:
    """A `TaskResult` of `values`, one per name in `_FIELDS`, without its
    ``__post_init__``.

    That only runs ``normalize_json`` over args and kwargs, and a job's are JSON
    types already (read from Redis, or normalised at enqueue): skipping it saves
    two walks per result, on every enqueue and once per attempt in the worker.
    A Django whose TaskResult has other fields gets the normal constructor.
    """
    if not _SLOTS_MATCH:
        return TaskResult(**dict(zip(_FIELDS, values, strict=True)))
    result = object.__new__(TaskResult)
    for set_slot, value in zip(_SETTERS, (*values, None), strict=True):
        set_slot(result, value)
    return result


def _finished_at(job: Job, status: TaskResultStatus) -> datetime | None:
    return job.finished_at if status in _FINISHED else None


def errors_of(job: Job, history: list[Attempt]) -> list[TaskError]:
    """One `TaskError` per failed attempt in `history`, oldest first.

    The job keeps the full traceback of its last failure only; earlier ones give
    their class and message (cut to 200 bytes) in the traceback's place.
    """
    failed = [attempt for attempt in history if attempt.error_class]
    errors = [
        _task_error(attempt.error_class, "", attempt.error_message)
        for attempt in failed
    ]
    last = job.error
    if last is None:
        if not errors and job.status is JobStatus.CANCELLED:
            # Cancelled before any attempt: no error was recorded, yet the
            # result reads FAILED; say why.
            path = f"{JobCancelled.__module__}.{JobCancelled.__qualname__}"
            errors.append(_task_error(path, "", "Cancelled before it ran."))
        return errors
    if errors and failed[-1].error_class == last.exc_class:
        errors[-1] = _task_error(last.exc_class, last.traceback, last.message)
    elif not errors and job.status in (JobStatus.DEAD, JobStatus.CANCELLED):
        # Ended without a recorded attempt (it could not start): its error.
        errors.append(_task_error(last.exc_class, last.traceback, last.message))
    return errors


def _task_error(exc_class: str, traceback: str, message: str) -> TaskError:
    return TaskError(
        exception_class_path=exc_class,
        traceback=traceback or f"{exc_class}: {message}\n",
    )
