"""`RedisJobsBackend`: Django's Tasks framework on this app's queues and workers.

    TASKS = {
        "default": {
            "BACKEND": "django_redisjobs.tasks_backend.RedisJobsBackend",
            "QUEUES": ["default"],
            "OPTIONS": {"MAX_ATTEMPTS": 3},
        }
    }

``@task`` functions then become jobs in Redis that ``manage.py runworker`` runs
beside ``@background`` ones. The backend only translates: a `Task` call becomes a
job (`task_jobs.request_for`) stored through `transactions.submit`, as
``.delay()`` stores one; a job becomes a `TaskResult` (`task_jobs.task_result`);
the worker runs the task through the `task_runs.TaskRunner` registered for it.
OPTIONS are this app's extras per alias (`task_options`). Needs Django 6.0 or
newer: on 5.2 importing this module raises `ImportError`.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Any

from .exceptions import django_tasks_missing

try:
    from django.tasks import Task, TaskResult
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.exceptions import (
        InvalidTask,
        InvalidTaskBackend,
        TaskResultDoesNotExist,
    )
    from django.tasks.signals import task_enqueued
except ImportError as err:  # Django < 6.0 has no django.tasks
    raise django_tasks_missing() from err
from django.apps import apps
from django.core import checks
from django.db import DEFAULT_DB_ALIAS, transaction
from django.utils import timezone
from django.utils.json import normalize_json

from .conf import Problem, Settings, get_settings, raw_settings, validate
from .connection import build_client
from .exceptions import (
    JobDoesNotExist,
    RedisJobsConfigurationError,
    UnknownBackgroundFunction,
)
from .handle import JobHandle
from .job import MAX_DURATION, Job, JobStatus
from .keys import is_safe_name
from .policy import JobDefaults
from .queue import get_store
from .registry import FunctionSpec, autodiscover, registry
from .task_jobs import (
    enqueued_result,
    job_defaults,
    request_for,
    task_like,
    task_result,
)
from .task_options import parse_options
from .task_runs import TaskRunner
from .transactions import submit

APP_NAME = "django_redisjobs"
#: Statuses of a job that was stored (or will be at commit) and has not run.
_WAITING = frozenset({JobStatus.PENDING, JobStatus.QUEUED, JobStatus.SCHEDULED})


class RedisJobsBackend(BaseTaskBackend):
    """Stores each task call as a job in Redis, for ``runworker`` to run.

    Every capability is real: ``run_after`` defers the job, ``async def`` tasks
    run on the worker's event loop, any process reads results back, and the
    worker claims higher priorities first (100 down to -100), in enqueue order
    within one priority.
    """

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        self._options, self._problems = parse_options(alias, self.options)
        # Tasks that passed validate_task here; ones with a run_after are not
        # kept, as each call may bring a new moment.
        self._valid: set[Task[Any, Any]] = set()
        self._specs: dict[object, FunctionSpec] = {}
        self._job_defaults: dict[tuple[object, str, int], tuple[Settings, JobDefaults]]
        self._job_defaults = {}

    # -- validation and the worker's registry ---------------------------------

    def validate_task(self, task: Task[Any, Any]) -> None:
        """Django's checks, then that the queue name is one Redis keys can carry;
        raises `InvalidTask`. A valid task is registered for the worker under its
        dotted path (Django validates each task as it is created, so importing a
        tasks module registers its tasks, as ``@background`` does)."""
        if task.run_after is None and task in self._valid:
            return
        super().validate_task(task)
        if not is_safe_name(task.queue_name):
            raise InvalidTask(
                f"Queue {task.queue_name!r} is not a valid queue name; use letters, "
                "digits, '_', '.' and '-' only."
            )
        if task.run_after is not None and _too_far(task.run_after):
            raise InvalidTask(
                f"run_after is {task.run_after!r}; use a time at most "
                f"{MAX_DURATION!r} from now."
            )
        self._register(task)
        if task.run_after is None:
            self._valid.add(task)

    def _register(self, task: Task[Any, Any]) -> None:
        """Register `task` with the worker, unless another alias defined it.

        The retry options a worker applies (backoff, jitter) are those of the
        alias a task is defined with (``@task(backend=...)``); a copy made with
        ``using(backend=...)`` for another alias does not replace them.
        """
        spec = self._spec(task)
        if task.backend == self.alias or spec.name not in registry:
            registry.register(spec)

    def _spec(self, task: Task[Any, Any]) -> FunctionSpec:
        """The spec of `task`'s function with this alias's OPTIONS."""
        spec = self._specs.get(task.func)
        if spec is None:
            runner = TaskRunner(task, type(self), self.alias)
            opts = self._options
            spec = FunctionSpec(
                name=task.module_path,
                func=runner,
                is_async=runner.is_async,
                max_attempts=opts.max_attempts,
                backoff_base=opts.backoff_base,
                backoff_max=opts.backoff_max,
                jitter=opts.jitter,
                timeout=opts.timeout,
                result_ttl=opts.result_ttl,
                unique=opts.unique,
                unique_for=opts.unique_for,
                on_attempt_end=runner.attempt_ended,
            )
            self._specs[task.func] = spec
        return spec

    # -- enqueue ---------------------------------------------------------------

    def enqueue(
        self, task: Task[Any, Any], args: Any, kwargs: Any
    ) -> TaskResult[Any, Any]:
        """Store a job for the task call; return its result, READY.

        With ``OPTIONS["ON_COMMIT"]`` (default: ``REDISJOBS["ON_COMMIT"]``, True)
        a call inside ``transaction.atomic()`` returns the result at once, with
        its id, and writes the job when the outermost transaction commits
        (nothing on rollback); ``task_enqueued`` is sent then. Raises
        `InvalidTask`, `TypeError` for arguments Django cannot normalise,
        `SerializationError` for ones JSON cannot carry unchanged, and
        `RedisUnavailable` when Redis cannot be reached outside a transaction.
        With ``OPTIONS["UNIQUE"]``, a call whose job already waits or runs gets
        that job's result instead.
        """
        self.validate_task(task)
        if self._problems:
            raise InvalidTaskBackend(_sentence(self._problems[0]))
        # Calls without arguments are common: skip the walks for them.
        args = normalize_json(args) if args else []
        kwargs = normalize_json(kwargs) if kwargs else {}
        spec = self._spec(task)
        request = request_for(task, spec, args, kwargs, self._defaults(task, spec))
        (handle,) = submit(spec, [request], on_commit=self._options.on_commit)
        if handle.id == request.job.id and handle.status in _WAITING:
            result = enqueued_result(task, handle.job, self.alias)
        else:  # a unique job's holder, or a job eager mode ran already
            result = task_result(task, handle.job, self.alias)
        if handle.status is JobStatus.PENDING:
            # Registered after submit's own write, so it runs after it.
            announce = partial(self._announce, handle, request.job.id, result)
            transaction.on_commit(announce, using=DEFAULT_DB_ALIAS)
        else:
            self._announce(handle, request.job.id, result)
        return result

    def _defaults(self, task: Task[Any, Any], spec: FunctionSpec) -> JobDefaults:
        """`job_defaults`, worked out once per function, queue and priority for
        the current settings, since every enqueue needs them."""
        settings = get_settings()
        key = (task.func, task.queue_name, task.priority)
        cached = self._job_defaults.get(key)
        if cached is None or cached[0] is not settings:
            cached = (settings, job_defaults(task, spec, settings))
            self._job_defaults[key] = cached
        return cached[1]

    def _announce(
        self, handle: JobHandle, job_id: str, result: TaskResult[Any, Any]
    ) -> None:
        """Send ``task_enqueued`` once the job is in Redis; not for a job that was
        not stored (a failed write after commit, a unique job's holder)."""
        if handle.status is not JobStatus.PENDING and handle.id == job_id:
            task_enqueued.send_robust(type(self), task_result=result)

    # -- results ---------------------------------------------------------------

    def get_result(self, result_id: str) -> TaskResult[Any, Any]:
        """Read the task's result from Redis, as it stands now.

        Raises `TaskResultDoesNotExist` for an unknown id, one whose result
        outlived its TTL (``RESULT_TTL_S``, or ``DEAD_TTL_S`` after a failure),
        or the id of a job that is not a task; `RedisUnavailable` when Redis
        cannot be reached.
        """
        job = self._read(str(result_id))
        task = self._task_of(job)
        return task_result(task_like(task, job, self.alias), job, self.alias)

    def _read(self, job_id: str) -> Job:
        store = get_store()
        try:
            if len(self.queues) == 1:
                (queue,) = self.queues
            else:
                queue = store.locate(job_id)
            return store.get(job_id, queue)
        except JobDoesNotExist as err:
            raise TaskResultDoesNotExist(
                f"No task result with id {job_id!r}: never enqueued here, or "
                "expired after its result TTL."
            ) from err

    def _task_of(self, job: Job) -> Task[Any, Any]:
        """The task a job runs, from the registry: a name read from Redis never
        makes this process import code, but the installed apps' task modules
        (``AUTODISCOVER_MODULES``) are imported once, when it is unknown."""
        if job.func not in registry:
            autodiscover(get_settings().autodiscover_modules)
        try:
            runner = registry.get(job.func).func
        except UnknownBackgroundFunction as err:
            raise TaskResultDoesNotExist(
                f"Task result {job.id!r} belongs to {job.func!r}, which is not a "
                f"task known to this process: {err}"
            ) from err
        if not isinstance(runner, TaskRunner):
            raise TaskResultDoesNotExist(
                f"{job.id!r} is the id of a job of the background function "
                f"{job.func!r}, not of a django.tasks task."
            )
        return runner.task

    # -- system checks ---------------------------------------------------------

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        """Errors for what would stop tasks from running: the app not installed
        (T001), an invalid or unusable Redis configuration in ``REDISJOBS``
        (T002), bad OPTIONS (T003), a queue in QUEUES that Redis keys cannot
        carry (T004). No network I/O."""
        messages: list[checks.CheckMessage] = []
        if not apps.is_installed(APP_NAME):
            messages.append(
                checks.Error(
                    f"TASKS[{self.alias!r}] uses RedisJobsBackend, but {APP_NAME} "
                    "is not in INSTALLED_APPS.",
                    hint=f"Add {APP_NAME!r} to INSTALLED_APPS so runworker and its "
                    "settings checks are available.",
                    id="redisjobs.T001",
                )
            )
        messages += [
            checks.Error(_sentence(p), hint=p.hint, id="redisjobs.T002")
            for p in self._redis_problems()
        ]
        messages += [
            checks.Error(_sentence(p), hint=p.hint, id="redisjobs.T003")
            for p in self._problems
        ]
        messages += [
            checks.Error(
                f"TASKS[{self.alias!r}]['QUEUES'] names {queue!r}, which is not a "
                "valid queue name.",
                hint="Use letters, digits, '_', '.' and '-' only.",
                id="redisjobs.T004",
            )
            for queue in sorted(self.queues, key=str)
            if not (isinstance(queue, str) and is_safe_name(queue))
        ]
        return messages

    def _redis_problems(self) -> list[Problem]:
        problems = [
            Problem(f"REDISJOBS[{p.key!r}]", p.message, p.hint)
            for p in validate(raw_settings())
        ]
        if problems:
            return problems
        try:
            build_client(get_settings())  # builds a client; connects on first use
        except RedisJobsConfigurationError as err:
            return [Problem("REDISJOBS", str(err), "Check REDIS_URL or CACHE_ALIAS.")]
        return []


def _too_far(run_after: datetime) -> bool:
    """Whether `run_after` lies beyond the furthest time a job can wait for; a
    naive one (USE_TZ off) is read as local time, as `request_for` reads it."""
    if timezone.is_naive(run_after):
        run_after = timezone.make_aware(run_after)
    return run_after - timezone.now() > MAX_DURATION


def _sentence(problem: Problem) -> str:
    text = f"{problem.key} {problem.message}"
    return text if problem.key != "REDISJOBS" else problem.message
