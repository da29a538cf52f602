"""`BackgroundFunction`: what ``@background`` returns.

Calling one runs the function inline; ``.delay()``, ``.enqueue()`` and
``.enqueue_many()`` turn calls into jobs and hand them to `transactions.submit`;
``.using()`` returns a copy with other options. The options each job gets come
from `policy.resolve_options`, and every value is checked (`validation`) before
anything is stored.
"""

import dataclasses
import functools
import hashlib
import importlib
import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, ParamSpec, TypeVar

from .conf import Settings, get_settings
from .exceptions import InvalidJob, UnknownBackgroundFunction
from .handle import JobHandle
from .job import duration_ms, from_ms, now_epoch_ms
from .policy import NO_OPTIONS, JobDefaults, JobOptions, new_job, resolve_options
from .queue import EnqueueRequest
from .registry import FunctionSpec
from .serialization import canonical, encode_arguments
from .transactions import submit
from .validation import (
    check_call,
    check_options,
    check_using,
    run_at_ms,
)


@dataclass(frozen=True)
class _Call:
    """What one `enqueue()` call adds to the function's options."""

    delay: timedelta | None = None
    run_at: datetime | None = None
    at_front: bool = False
    unique_key: str | None = None


_PLAIN_CALL = _Call()


@functools.cache
def _signature(func: Callable[..., Any]) -> inspect.Signature:
    return inspect.signature(func)


# TypeVar rather than PEP 695 syntax: the package supports Python 3.11.
P = ParamSpec("P")
R = TypeVar("R")


class BackgroundFunction(Generic[P, R]):
    """A function that runs inline when called, and as a job via `delay`/`enqueue`."""

    def __init__(self, spec: FunctionSpec, options: JobOptions = NO_OPTIONS) -> None:
        self.spec = spec
        self.options = options
        self.__wrapped__ = spec.func
        self.__doc__ = spec.func.__doc__
        self.__name__ = getattr(spec.func, "__name__", spec.name)
        self.__module__ = spec.func.__module__
        self.__qualname__ = getattr(spec.func, "__qualname__", self.__name__)
        self._defaults_for: tuple[Settings, JobDefaults] | None = None

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
        result_ttl, unique, unique_for), like Django's `Task.using()`.

        Raises `InvalidJob` for a bad value, or for a retry option (backoff,
        jitter, ``retry_on``, ``no_retry_on``), which only the decorator sets;
        `TypeError` for an unknown name.
        """
        check_using(changes)
        options = dataclasses.replace(self.options, **changes)
        check_options(options)
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

        `queue` and `priority` (an int from -100 to 100, higher first) override the
        function's. `delay` (a timedelta) or `run_at` (an aware datetime), at most
        `job.MAX_DURATION` ahead, make the job wait; `at_front` puts it ahead of
        the jobs of its priority already waiting. `unique=True` (a key from the
        function and its arguments) or `unique_key` make the job unique in its
        queue: while a job with that key is queued, scheduled or active, and until
        `unique_for` after its enqueue, the handle returned is that job's and
        nothing new is stored. `on_commit` overrides ``REDISJOBS["ON_COMMIT"]`` and
        `using` names the database whose transaction to follow. Raises
        `InvalidJob` for bad options, `SerializationError` for arguments that JSON
        cannot carry unchanged, and `RedisUnavailable` when Redis cannot be
        reached outside a transaction.
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
        check_call(at_front, unique_key)
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

    def request_with_id(self, job_id: str, args: Sequence[Any]) -> EnqueueRequest:
        """A job for a call with `args` on the function's defaults, under a given
        id: an event subscriber's job id comes from the event, so enqueueing it
        a second time stores nothing (see events.py)."""
        request = self._request(args, {}, _PLAIN_CALL)
        return dataclasses.replace(
            request, job=dataclasses.replace(request.job, id=job_id)
        )

    def _request(
        self, args: Sequence[Any], kwargs: Mapping[str, Any], call: _Call
    ) -> EnqueueRequest:
        self._check_resolvable()
        args_json, kwargs_json = encode_arguments(args, kwargs)
        defaults = self._defaults(get_settings())
        now_ms = now_epoch_ms()
        start_ms = run_at_ms(call.delay, call.run_at, now_ms)
        unique_key, unique_until = self._unique(
            args, kwargs, call.unique_key, defaults, now_ms
        )
        job = new_job(
            self.spec.name,
            defaults,
            args,
            kwargs,
            now_ms,
            start_ms,
            from_ms(start_ms) if start_ms > now_ms else None,
            unique_key,
            unique_until,
        )
        return EnqueueRequest(job, args_json, kwargs_json, call.at_front)

    def _defaults(self, settings: Settings) -> JobDefaults:
        """`resolve_options` for this copy, worked out once per settings object,
        since every enqueue needs it."""
        cached = self._defaults_for
        if cached is not None and cached[0] is settings:
            return cached[1]
        defaults = resolve_options(self.spec, self.options, settings)
        self._defaults_for = (settings, defaults)
        return defaults

    def _unique(
        self,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        unique_key: str | None,
        defaults: JobDefaults,
        now_ms: int,
    ) -> tuple[str, datetime | None]:
        """The job's unique key ("" when it is not unique) and window end."""
        if unique_key is not None:
            if self.options.unique is False:
                raise InvalidJob("unique_key was given together with unique=False.")
        elif defaults.unique:
            unique_key = self._arguments_key(args, kwargs)
        else:
            return "", None
        if defaults.unique_for is None:
            return unique_key, None
        return unique_key, from_ms(now_ms + duration_ms(defaults.unique_for))

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
