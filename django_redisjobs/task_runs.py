"""A django.tasks `Task` run by the worker, as any background function is.

The backend registers one `TaskRunner` per task as the `FunctionSpec.func` of the
task's dotted path, with its `attempt_ended` as the spec's ``on_attempt_end``. The
worker then claims, runs, retries and records task jobs with the same code as
``@background`` jobs (threads for sync tasks, its event loop for ``async def``
ones); the runner only adds what Django expects around the call: the
`TaskContext`, the return value normalised to JSON types, and the
``task_started`` and ``task_finished`` signals.
"""

from __future__ import annotations

import inspect
from collections.abc import Coroutine
from typing import Any

from .exceptions import django_tasks_missing

try:
    from django.tasks import Task, TaskContext, TaskResult
    from django.tasks.signals import task_finished, task_started
except ImportError as err:  # Django < 6.0 has no django.tasks
    raise django_tasks_missing() from err
from django.utils.json import normalize_json

from .context import current_job
from .exceptions import NoCurrentJob
from .job import Job, JobError, JobStatus
from .task_jobs import finish, task_like, task_result

_PLAIN = frozenset({type(None), str, int, float, bool})


def _normalised(value: Any) -> Any:
    """``normalize_json(value)``, without the call for a scalar (most results)."""
    return value if type(value) in _PLAIN else normalize_json(value)


class TaskRunner:
    """Calls one task's function for the job the worker runs now.

    `sender` is the backend class (the sender of Django's signals, as Django's own
    backends send them) and `alias` the backend alias results name.
    """

    def __init__(self, task: Task[Any, Any], sender: type, alias: str) -> None:
        self.task = task
        self.sender = sender
        self.alias = alias
        self.is_async = inspect.iscoroutinefunction(task.func)
        # The RUNNING result of each attempt under way here, by (job id, attempt):
        # threads add and pop their own keys (atomic dict operations).
        self._started: dict[tuple[str, int], TaskResult[Any, Any]] = {}

    def __repr__(self) -> str:
        return f"<TaskRunner {self.task.module_path}>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the task with the job's arguments; a coroutine for an async task.

        Sends ``task_started`` first, with the result as RUNNING, the attempt
        counted in ``worker_ids``.
        """
        job = self._claimed()
        running = task_result(task_like(self.task, job), job, self.alias)
        # attempt_ended finishes this same object, as Django's ImmediateBackend
        # does with its result (the context's task_result sees the end too).
        self._started[(job.id, job.attempts)] = running
        task_started.send_robust(self.sender, task_result=running)
        if self.is_async:
            return self._await(self._call(running, args, kwargs))
        # A value Django could not normalise raises TypeError, as in Django.
        return _normalised(self._call(running, args, kwargs))

    async def _await(self, call: Coroutine[Any, Any, Any]) -> Any:
        return _normalised(await call)

    def _call(
        self, running: TaskResult[Any, Any], args: tuple[Any, ...], kwargs: Any
    ) -> Any:
        if self.task.takes_context:
            return self.task.func(TaskContext(task_result=running), *args, **kwargs)
        return self.task.func(*args, **kwargs)

    def _claimed(self) -> Job:
        """The job this attempt runs, as its worker claimed it."""
        try:
            job = current_job().job
        except NoCurrentJob:
            job = None
        if job is None:
            raise NoCurrentJob(
                f"{self!r} runs only as a job on a worker; call the task's "
                "function, or Task.call(), to run it here."
            )
        return job

    def attempt_ended(
        self, job: Job, outcome: JobStatus, value: Any, error: JobError | None
    ) -> None:
        """The spec's ``on_attempt_end``: send ``task_finished``, from inside the
        exception handler when the attempt failed (Django's task logging reads
        ``sys.exc_info()``). A failed attempt to be retried reports READY."""
        result = self._started.pop((job.id, job.attempts), None)
        if result is None:  # cancelled before it started: nothing was built
            result = task_result(task_like(self.task, job), job, self.alias)
        finish(result, outcome, value, error)
        task_finished.send_robust(self.sender, task_result=result)
