"""`@background`: turns a module-level function into a `BackgroundFunction`."""

import dataclasses
import functools
import hashlib
import importlib
import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, overload

from .conf import Settings, get_settings
from .cron import parse_schedule
from .exceptions import InvalidCronEntry, InvalidJob, UnknownBackgroundFunction
from .handle import JobHandle
from .job import (
    MAX_PRIORITY,
    MIN_PRIORITY,
    Job,
    JobStatus,
    duration_ms,
    from_ms,
    new_job_id,
    now_epoch_ms,
    to_ms,
)
from .keys import is_safe_name
from .queue import EnqueueRequest
from .registry import FunctionSpec, dotted_name, registry
from .serialization import canonical, encode_arguments
from .transactions import submit


@dataclass(frozen=True)
class JobOptions:
    """Per-job options a caller may change with `using()`; None means the default."""

    queue: str | None = None
    priority: int | None = None
    max_attempts: int | None = None
    timeout: timedelta | None = None
    result_ttl: timedelta | None = None
    unique: bool | None = None
    unique_for: timedelta | None = None


MAX_UNIQUE_KEY_LENGTH = 200


@dataclass(frozen=True)
class _Call:
    """What one `enqueue()` call adds to the function's options."""

    delay: timedelta | None = None
    run_at: datetime | None = None
    at_front: bool = False
    unique_key: str | None = None


_PLAIN_CALL = _Call()


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
    for name in ("timeout", "result_ttl", "unique_for"):
        value = getattr(options, name)
        if value is not None and value <= timedelta(0):
            raise InvalidJob(f"{name} is {value!r}; use a positive timedelta.")


def _check_unique_key(key: str) -> None:
    if not isinstance(key, str) or not 0 < len(key) <= MAX_UNIQUE_KEY_LENGTH:
        raise InvalidJob(
            f"unique_key {key!r} is not valid; use a non-empty string of at most "
            f"{MAX_UNIQUE_KEY_LENGTH} characters."
        )


@dataclass(frozen=True, slots=True)
class _Defaults:
    """A function's job options with every layer of defaults applied."""

    queue: str
    priority: int
    max_attempts: int
    timeout: timedelta | None
    result_ttl: timedelta | None


@functools.cache
def _signature(func: Callable[..., Any]) -> inspect.Signature:
    return inspect.signature(func)


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
        self._defaults_for: tuple[Settings, _Defaults] | None = None

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
        result_ttl, unique, unique_for), like Django's `Task.using()`."""
        options = dataclasses.replace(self.options, **changes)
        _check_options(options)
        return BackgroundFunction(self.spec, options)

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> JobHandle:
        """Enqueue a call with these arguments on the function's defaults."""
        request = self._request(args, kwargs, _PLAIN_CALL)
        return submit(self.spec, [request])[0]

    def enqueue(
        self,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        queue: str | None = None,
        priority: int | None = None,
        delay: timedelta | None = None,
        run_at: datetime | None = None,
        at_front: bool = False,
        unique: bool | None = None,
        unique_key: str | None = None,
        unique_for: timedelta | None = None,
        on_commit: bool | None = None,
        using: str | None = None,
    ) -> JobHandle:
        """Enqueue one call; returns its handle (status PENDING inside a transaction).

        `queue` and `priority` (-100..100, higher first) override the function's.
        `delay` or `run_at` (an aware datetime) make the job wait; `at_front` puts it
        ahead of the jobs of its priority already waiting. `unique=True` (a key
        from the function and its arguments) or `unique_key` make the job unique in
        its queue: while a job with that key is queued, scheduled or active, and
        until `unique_for` after its enqueue, the handle returned is that job's and
        nothing new is stored. `on_commit` overrides ``REDISJOBS["ON_COMMIT"]``
        and `using` names the database whose transaction to follow. Raises
        `InvalidJob` for bad options, `SerializationError` for arguments that JSON
        cannot carry unchanged, and `RedisUnavailable` when Redis cannot be reached
        outside a transaction.
        """
        changes = {
            name: value
            for name, value in (
                ("queue", queue),
                ("priority", priority),
                ("unique", unique),
                ("unique_for", unique_for),
            )
            if value is not None
        }
        fn = self.using(**changes) if changes else self
        call = _Call(delay, run_at, at_front, unique_key)
        request = fn._request(args, kwargs or {}, call)
        return submit(self.spec, [request], on_commit=on_commit, using=using)[0]

    def enqueue_many(
        self,
        calls: Iterable[tuple[Sequence[Any], Mapping[str, Any]]],
        *,
        on_commit: bool | None = None,
        using: str | None = None,
    ) -> list[JobHandle]:
        """Enqueue many calls, as (args, kwargs) pairs, in one Redis round trip."""
        requests = [self._request(a, k, _PLAIN_CALL) for a, k in calls]
        return submit(self.spec, requests, on_commit=on_commit, using=using)

    def _request(
        self, args: Sequence[Any], kwargs: Mapping[str, Any], call: _Call
    ) -> EnqueueRequest:
        self._check_resolvable()
        args_json, kwargs_json = encode_arguments(args, kwargs)
        defaults = self._defaults(get_settings())
        now_ms = now_epoch_ms()
        run_at_ms = _run_at_ms(call.delay, call.run_at, now_ms)
        unique_key, unique_until = self._unique(args, kwargs, call.unique_key, now_ms)
        job = Job(
            id=new_job_id(now_ms),
            func=self.spec.name,
            queue=defaults.queue,
            args=list(args),
            kwargs=dict(kwargs),
            status=JobStatus.SCHEDULED if run_at_ms > now_ms else JobStatus.QUEUED,
            priority=defaults.priority,
            max_attempts=defaults.max_attempts,
            timeout=defaults.timeout,
            result_ttl=defaults.result_ttl,
            enqueued_at=from_ms(now_ms),
            run_at=from_ms(run_at_ms) if run_at_ms > now_ms else None,
            unique_key=unique_key,
            unique_until=unique_until,
        )
        return EnqueueRequest(job, args_json, kwargs_json, call.at_front)

    def _defaults(self, settings: Settings) -> "_Defaults":
        """The options of this function's jobs, each from `using()`, the decorator
        or ``REDISJOBS`` in that order; worked out once per settings object, since
        every enqueue needs them."""
        cached = self._defaults_for
        if cached is not None and cached[0] is settings:
            return cached[1]
        opts, spec = self.options, self.spec
        defaults = _Defaults(
            queue=opts.queue or spec.queue or settings.default_queue,
            priority=_first(opts.priority, spec.priority, 0),
            max_attempts=_first(
                opts.max_attempts, spec.max_attempts, settings.max_attempts
            ),
            timeout=_first_set(opts.timeout, spec.timeout, settings.timeout),
            result_ttl=_first_set(
                opts.result_ttl, spec.result_ttl, settings.result_ttl
            ),
        )
        self._defaults_for = (settings, defaults)
        return defaults

    def _unique(
        self,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        unique_key: str | None,
        now_ms: int,
    ) -> tuple[str, datetime | None]:
        """The job's unique key ("" when it is not unique) and window end."""
        opts, spec = self.options, self.spec
        unique_for = opts.unique_for or spec.unique_for
        if opts.unique is not None:
            unique = opts.unique
        else:
            unique = spec.unique or unique_for is not None
        if unique_key is not None:
            if opts.unique is False:
                raise InvalidJob("unique_key was given together with unique=False.")
            _check_unique_key(unique_key)
        elif unique:
            unique_key = self._arguments_key(args, kwargs)
        else:
            return "", None
        if unique_for is None:
            return unique_key, None
        return unique_key, from_ms(now_ms + duration_ms(unique_for))

    def _arguments_key(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
        """The function's name and a digest of the arguments bound to its
        parameters, so ``f(1, b=2)`` and ``f(b=2, a=1)`` give the same key."""
        try:
            bound = _signature(self.spec.func).bind(*args, **kwargs)
        except TypeError as err:
            raise InvalidJob(
                f"The arguments do not fit {self.spec.name}(): {err}; a unique key "
                "is made from them."
            ) from err
        digest = hashlib.sha256(canonical(bound.arguments).encode()).hexdigest()
        return f"{self.spec.name}:{digest}"

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
    unique: bool = False,
    unique_for: timedelta | None = None,
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
            unique=spec.unique,
            unique_for=spec.unique_for,
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
