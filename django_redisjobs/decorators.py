"""`@background`: turns a module-level function into a `BackgroundFunction`."""

import inspect
from collections.abc import Callable
from datetime import timedelta
from typing import Any, ParamSpec, TypeVar, overload

from .background_function import BackgroundFunction
from .policy import JobOptions
from .registry import FunctionSpec, dotted_name, registry
from .validation import check_function

__all__ = ["BackgroundFunction", "JobOptions", "background"]

# TypeVar rather than PEP 695 syntax: the package supports Python 3.11.
P = ParamSpec("P")
R = TypeVar("R")


@overload
def background(func: Callable[P, R], /) -> BackgroundFunction[P, R]: ...


@overload
def background(
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
    left as None take their value from ``REDISJOBS`` when a job is enqueued
    (`policy.resolve_options`). ``cron="*/5 * * * *"`` also makes it a cron entry
    named after the function (in ``TIME_ZONE``, without arguments).

    Raises `InvalidJob` for an option value that would fail later (a queue name
    that is not safe in a key, a priority that is not an int from -100 to 100,
    ``retry_on`` that is not a tuple of exception classes, a duration under 1 ms,
    ...), `InvalidCronEntry` for a bad cron expression, `TypeError` for an
    unknown option name, and `UnknownBackgroundFunction` for a function that is
    not defined at the top level of a module.
    """

    def decorate(f: Callable[..., Any]) -> BackgroundFunction[Any, Any]:
        spec = FunctionSpec(
            name=dotted_name(f),
            func=f,
            is_async=inspect.iscoroutinefunction(f),
            **options,
        )
        check_function(spec)
        registry.register(spec)
        return BackgroundFunction(spec)

    return decorate(func) if func is not None else decorate
