"""`@background`: turns a module-level function into a `BackgroundFunction`."""

import dataclasses
import importlib
import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, overload

from .conf import get_settings
from .cron import parse_schedule
from .exceptions import InvalidCronEntry, InvalidJob, UnknownBackgroundFunction
from .handle import JobHandle
from .job import (
    MAX_PRIORITY,
    MIN_PRIORITY,
    Job,
    JobStatus,
    from_ms,
    new_job_id,
    now_epoch_ms,
    to_ms,
)
from .keys import is_safe_name
from .queue import EnqueueRequest
from .registry import FunctionSpec, dotted_name, registry
from .serialization import encode_arguments
from .transactions import submit


@dataclass(frozen=True)
class JobOptions:
    """Per-job options a caller may change with `using()`; None means the default."""

    queue: str | None = None
    priority: int | None = None
    max_attempts: int | None = None
    timeout: timedelta | None = None
    result_ttl: timedelta | None = None


def _check_options(options: JobOptions) -> None:
    if options.queue is not None and not is_safe_name(options.queue):
        raise InvalidJob(
            f"Queue name {options.queue!r} is not valid; use letters, digits, "
            "'_', '.' and '-'."
        )
    if options.priority is not None and not (
        MIN_PRIORITY <= options.priority <= MAX_PRIORITY
    ):
        raise InvalidJob(
            f"Priority {options.priority!r} is outside {MIN_PRIORITY}..{MAX_PRIORITY}."
        )
    if options.max_attempts is not None and options.max_attempts < 1:
        raise InvalidJob(f"max_attempts is {options.max_attempts!r}; use 1 or more.")
    for name in ("timeout", "result_ttl"):
        value = getattr(options, name)
        if value is not None and value <= timedelta(0):
            raise InvalidJob(f"{name} is {value!r}; use a positive timedelta.")


class BackgroundFunction[**P, R]:
    """A function that runs inline when called, and as a job via `delay`/`enqueue`."""

    def __init__(self, spec: FunctionSpec, options: JobOptions) -> None:
        self.spec = spec
        self.options = options
        self.__wrapped__ = spec.func
        self.__doc__ = spec.func.__doc__
        self.__name__ = getattr(spec.func, "__name__", spec.name)
        self.__module__ = spec.func.__module__
        self.__qualname__ = getattr(spec.func, "__qualname__", self.__name__)

    def __repr__(self) -> str:
        return f"<BackgroundFunction {self.spec.name}>"

    @property
    def name(self) -> str:
        """The dotted name stored in each job (``module.function``)."""
        return self.spec.name

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the function here and now, like the undecorated function."""
        return self.spec.func(*args, **kwargs)  # type: ignore[no-any-return]  # spec.func erases R

    def using(self, **changes: Any) -> "BackgroundFunction[P, R]":
        """A copy with other defaults (queue, priority, max_attempts, timeout,
        result_ttl), like Django's `Task.using()`."""
        options = dataclasses.replace(self.options, **changes)
        _check_options(options)
        return BackgroundFunction(self.spec, options)

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> JobHandle:
        """Enqueue a call with these arguments on the function's defaults."""
        return self.enqueue(args, kwargs)

    def enqueue(
        self,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        queue: str | None = None,
        delay: timedelta | None = None,
        run_at: datetime | None = None,
        at_front: bool = False,
        on_commit: bool | None = None,
        using: str | None = None,
    ) -> JobHandle:
        """Enqueue one call; returns its handle (status PENDING inside a transaction).

        `delay` or `run_at` (an aware datetime) make the job wait; `at_front` puts it
        at the head of its queue. `on_commit` overrides ``REDISJOBS["ON_COMMIT"]``
        and `using` names the database whose transaction to follow. Raises
        `SerializationError` for arguments that JSON cannot carry unchanged, and
        `RedisUnavailable` when Redis cannot be reached outside a transaction.
        """
        fn = self.using(queue=queue) if queue else self
        request = fn._request(args, kwargs or {}, delay, run_at, at_front)
        return submit(self.spec, [request], on_commit=on_commit, using=using)[0]

    def enqueue_many(
        self,
        calls: Iterable[tuple[Sequence[Any], Mapping[str, Any]]],
        *,
        on_commit: bool | None = None,
        using: str | None = None,
    ) -> list[JobHandle]:
        """Enqueue many calls, as (args, kwargs) pairs, in one Redis round trip."""
        requests = [self._request(a, k, None, None, False) for a, k in calls]
        return submit(self.spec, requests, on_commit=on_commit, using=using)

    def _request(
        self,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        delay: timedelta | None,
        run_at: datetime | None,
        at_front: bool,
    ) -> EnqueueRequest:
        self._check_resolvable()
        args_json, kwargs_json = encode_arguments(args, kwargs)
        settings = get_settings()
        now_ms = now_epoch_ms()
        run_at_ms = _run_at_ms(delay, run_at, now_ms)
        opts, spec = self.options, self.spec
        job = Job(
            id=new_job_id(now_ms),
            func=spec.name,
            queue=opts.queue or spec.queue or settings.default_queue,
            args=list(args),
            kwargs=dict(kwargs),
            status=JobStatus.SCHEDULED if run_at_ms > now_ms else JobStatus.QUEUED,
            priority=_first(opts.priority, spec.priority, 0),
            max_attempts=_first(
                opts.max_attempts, spec.max_attempts, settings.max_attempts
            ),
            timeout=_first_set(opts.timeout, spec.timeout, settings.timeout),
            result_ttl=_first_set(
                opts.result_ttl, spec.result_ttl, settings.result_ttl
            ),
            enqueued_at=from_ms(now_ms),
            run_at=from_ms(run_at_ms) if run_at_ms > now_ms else None,
        )
        return EnqueueRequest(job, args_json, kwargs_json, at_front)

    def _check_resolvable(self) -> None:
        """The worker finds functions by name; make sure the name leads back here."""
        if getattr(self, "_resolved", False):
            return
        module_name, _, attr = self.spec.name.rpartition(".")
        found = getattr(importlib.import_module(module_name), attr, None)
        if module_name == "__main__" or getattr(found, "spec", None) is not self.spec:
            raise UnknownBackgroundFunction(
                f"{self.spec.name!r} does not lead back to this background function; "
                "define it at the top level of an importable module (not __main__) "
                "under its own name."
            )
        self._resolved = True


def _check_cron(spec: FunctionSpec) -> None:
    """A decorated cron entry: a valid expression, a usable name, no arguments."""
    parse_schedule(spec.cron, "UTC", entry=spec.name)
    if not is_safe_name(spec.name):
        raise InvalidCronEntry(
            f"Cron entry {spec.name!r} is named after its function, and the name "
            "may only hold letters, digits, '_', '.' and '-'.",
            field="name",
        )
    try:
        inspect.signature(spec.func).bind()
    except TypeError as err:
        raise InvalidCronEntry(
            f"Cron entry {spec.name!r} calls its function without arguments, but "
            f"it requires some ({err}); use REDISJOBS['CRON'] to pass them.",
            field="args",
        ) from err


def _first(*values: int | None) -> int:
    return next(v for v in values if v is not None)


def _first_set(*values: timedelta | None) -> timedelta | None:
    return next((v for v in values if v is not None), None)


def _run_at_ms(delay: timedelta | None, run_at: datetime | None, now_ms: int) -> int:
    """When the job may start, in epoch ms; `now_ms` (or earlier) means at once."""
    if delay is not None and run_at is not None:
        raise InvalidJob("Pass either delay or run_at, not both.")
    if delay is not None:
        return now_ms + round(delay.total_seconds() * 1000)
    if run_at is not None:
        if run_at.tzinfo is None:
            raise InvalidJob(f"run_at must be an aware datetime, got {run_at!r}.")
        return to_ms(run_at)
    return now_ms


@overload
def background[**P, R](func: Callable[P, R], /) -> BackgroundFunction[P, R]: ...


@overload
def background[**P, R](
    *,
    queue: str | None = None,
    priority: int | None = None,
    max_attempts: int | None = None,
    timeout: timedelta | None = None,
    result_ttl: timedelta | None = None,
    backoff_base: timedelta | None = None,
    backoff_max: timedelta | None = None,
    jitter: bool | None = None,
    retry_on: tuple[type[BaseException], ...] = (),
    no_retry_on: tuple[type[BaseException], ...] = (),
    cron: str | None = None,
) -> Callable[[Callable[P, R]], BackgroundFunction[P, R]]: ...


def background(func: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """Make a module-level function runnable as a background job.

    Use bare (``@background``) or with options. Calling the result runs the
    function inline; ``.delay()``/``.enqueue()`` store a job for a worker. Options
    left as None take their value from ``REDISJOBS`` when a job is enqueued.
    ``cron="*/5 * * * *"`` also makes it a cron entry named after the function
    (in ``TIME_ZONE``, without arguments); raises `InvalidCronEntry` for a bad
    expression.
    """

    def decorate(f: Callable[..., Any]) -> BackgroundFunction[Any, Any]:
        spec = FunctionSpec(
            name=dotted_name(f),
            func=f,
            is_async=inspect.iscoroutinefunction(f),
            **options,
        )
        job_options = JobOptions(
            queue=spec.queue,
            priority=spec.priority,
            max_attempts=spec.max_attempts,
            timeout=spec.timeout,
            result_ttl=spec.result_ttl,
        )
        _check_options(job_options)
        for name in ("backoff_base", "backoff_max"):
            value = getattr(spec, name)
            if value is not None and value <= timedelta(0):
                raise InvalidJob(f"{name} is {value!r}; use a positive timedelta.")
        if spec.cron is not None:
            _check_cron(spec)
        registry.register(spec)
        return BackgroundFunction(spec, JobOptions())

    return decorate(func) if func is not None else decorate
