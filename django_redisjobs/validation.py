"""Checks of background function and job options at the door.

Run at decoration (`check_function`), in ``using()`` (`check_options`) and at
enqueue (`check_call`, `run_at_ms`), so that a value that would fail later, in a
worker thread or when the job is read back, is refused in the caller's code.
Every refusal is `InvalidJob` with a sentence that names the option and shows
the value.
"""

import inspect
from datetime import datetime, timedelta
from typing import Any

from .cron import parse_schedule
from .exceptions import InvalidCronEntry, InvalidJob, shown
from .job import (
    MAX_ATTEMPTS_LIMIT,
    MAX_DURATION,
    MAX_PRIORITY,
    MIN_PRIORITY,
    duration_ms,
    to_ms,
)
from .keys import is_safe_name
from .policy import JobOptions
from .registry import FunctionSpec

MAX_UNIQUE_KEY_LENGTH = 200
#: Durations are stored in whole ms (rounded down); a shorter one would be 0,
#: which the job hash reads as "not set" (no timeout, the default TTL).
MIN_DURATION = timedelta(milliseconds=1)

_DURATIONS = f"use a positive timedelta of at least 1 ms and at most {MAX_DURATION!r}"
_CLASSES = "use a tuple of exception classes, such as (ValueError, OSError)"
#: Decorator options that the worker reads from its own copy of the function when
#: an attempt fails; a job does not carry them, so no call can change them.
RETRY_OPTIONS = ("backoff_base", "backoff_max", "jitter", "retry_on", "no_retry_on")


def check_options(options: JobOptions) -> None:
    """Raise `InvalidJob` for the first option of `options` that is not valid."""
    _check_queue(options.queue)
    _check_priority(options.priority)
    _check_max_attempts(options.max_attempts)
    for name in ("timeout", "result_ttl", "unique_for"):
        check_duration(name, getattr(options, name))
    if options.unique is not None and not isinstance(options.unique, bool):
        raise InvalidJob(f"unique is {shown(options.unique)}; use True or False.")


def check_function(spec: FunctionSpec) -> None:
    """Raise `InvalidJob` (or `InvalidCronEntry`) for a bad decorator option."""
    check_options(
        JobOptions(
            queue=spec.queue,
            priority=spec.priority,
            max_attempts=spec.max_attempts,
            timeout=spec.timeout,
            result_ttl=spec.result_ttl,
            unique=spec.unique,
            unique_for=spec.unique_for,
        )
    )
    check_duration("backoff_base", spec.backoff_base)
    check_duration("backoff_max", spec.backoff_max)
    if spec.jitter is not None and not isinstance(spec.jitter, bool):
        raise InvalidJob(f"jitter is {shown(spec.jitter)}; use True, False or None.")
    _check_exception_classes("retry_on", spec.retry_on)
    _check_exception_classes("no_retry_on", spec.no_retry_on)
    if spec.cron is not None:
        _check_cron(spec)


def check_using(changes: dict[str, Any]) -> None:
    """Refuse, in ``using()``, the decorator options that a job does not carry."""
    for name in RETRY_OPTIONS:
        if name in changes:
            raise InvalidJob(
                f"using() got {name}={shown(changes[name])}, but {name} cannot change "
                "per job: the worker reads it from the function's decorator when an "
                "attempt fails. Pass it to @background instead."
            )


def check_call(at_front: Any, unique_key: str | None) -> None:
    """Check the per-call arguments of ``enqueue()`` that are not options."""
    if not isinstance(at_front, bool):
        raise InvalidJob(f"at_front is {shown(at_front)}; use True or False.")
    if unique_key is not None:
        check_unique_key(unique_key)


def check_unique_key(key: Any) -> None:
    """A unique key is a non-empty str of at most `MAX_UNIQUE_KEY_LENGTH` chars
    that UTF-8 can encode: it becomes part of a Redis key name."""
    if not isinstance(key, str) or not 0 < len(key) <= MAX_UNIQUE_KEY_LENGTH:
        raise InvalidJob(
            f"unique_key {shown(key)} is not valid; use a non-empty string of at most "
            f"{MAX_UNIQUE_KEY_LENGTH} characters."
        )
    if not key.isascii():
        try:
            key.encode("utf-8")
        except UnicodeEncodeError as err:
            raise InvalidJob(
                f"unique_key {shown(key)} holds {key[err.start : err.end]!r}, a lone "
                "surrogate that UTF-8 cannot encode."
            ) from None


def check_duration(name: str, value: Any) -> None:
    """A duration option is None or a timedelta from 1 ms to `MAX_DURATION`."""
    if value is None:
        return
    if not isinstance(value, timedelta):
        raise InvalidJob(
            f"{name} is {shown(value)}, not a timedelta; {_DURATIONS}, such as "
            "timedelta(seconds=30)."
        )
    if not MIN_DURATION <= value <= MAX_DURATION:
        raise InvalidJob(f"{name} is {shown(value)}; {_DURATIONS}.")


def run_at_ms(delay: Any, run_at: Any, now_ms: int) -> int:
    """When a job may start, in epoch ms, from ``enqueue()``'s `delay` or `run_at`;
    `now_ms` (or earlier) means at once.

    Raises `InvalidJob` when both are given, for a `delay` that is not a
    timedelta, a `run_at` that is not an aware datetime, and for either one more
    than `MAX_DURATION` after `now_ms`. A negative delay or a past `run_at` is
    accepted and means now.
    """
    if delay is not None and run_at is not None:
        raise InvalidJob("Pass either delay or run_at, not both.")
    if delay is not None:
        if not isinstance(delay, timedelta):
            raise InvalidJob(
                f"delay is {shown(delay)}, not a timedelta; use one such as "
                "timedelta(seconds=30)."
            )
        if delay > MAX_DURATION:
            raise InvalidJob(f"delay is {shown(delay)}; use at most {MAX_DURATION!r}.")
        return now_ms + round(delay.total_seconds() * 1000)
    if run_at is not None:
        return _run_at_ms(run_at, now_ms)
    return now_ms


def _run_at_ms(run_at: Any, now_ms: int) -> int:
    if not isinstance(run_at, datetime):
        raise InvalidJob(
            f"run_at is {shown(run_at)}, not a datetime; use an aware one."
        )
    try:
        # A tzinfo of one's own may return an offset of a day or more: ValueError.
        aware = run_at.utcoffset() is not None
        ms = to_ms(run_at) if aware else 0
    except (OverflowError, ValueError) as err:
        raise InvalidJob(
            f"run_at is {shown(run_at)}, whose time zone gives no valid UTC offset."
        ) from err
    if not aware:
        raise InvalidJob(f"run_at must be an aware datetime, got {shown(run_at)}.")
    if ms - now_ms > duration_ms(MAX_DURATION):
        raise InvalidJob(
            f"run_at is {shown(run_at)}; use a time at most {MAX_DURATION!r} from now."
        )
    return ms


def _check_queue(queue: Any) -> None:
    if queue is not None and not (isinstance(queue, str) and is_safe_name(queue)):
        raise InvalidJob(
            f"Queue name {shown(queue)} is not valid; use a string of letters, digits, "
            "'_', '.' and '-'."
        )


def _is_int(value: Any) -> bool:
    # bool is an int subclass, but True is no priority or attempt count.
    return isinstance(value, int) and not isinstance(value, bool)


def _check_priority(priority: Any) -> None:
    if priority is None:
        return
    if not _is_int(priority):
        raise InvalidJob(
            f"Priority {shown(priority)} is not an int; use an int from {MIN_PRIORITY} "
            f"to {MAX_PRIORITY}."
        )
    if not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        raise InvalidJob(
            f"Priority {shown(priority)} is outside {MIN_PRIORITY}..{MAX_PRIORITY}."
        )


def _check_max_attempts(max_attempts: Any) -> None:
    if max_attempts is None:
        return
    if not _is_int(max_attempts) or not 1 <= max_attempts <= MAX_ATTEMPTS_LIMIT:
        raise InvalidJob(
            f"max_attempts is {shown(max_attempts)}; use an int from 1 to "
            f"{MAX_ATTEMPTS_LIMIT}."
        )


def _check_exception_classes(name: str, value: Any) -> None:
    """`retry_on` and `no_retry_on` go to `isinstance()` when an attempt fails:
    anything but a tuple of exception classes would raise there, in the worker."""
    if not isinstance(value, tuple):
        raise InvalidJob(f"{name} is {shown(value)}, not a tuple; {_CLASSES}.")
    for item in value:
        if not (isinstance(item, type) and issubclass(item, BaseException)):
            raise InvalidJob(
                f"{name} holds {shown(item)}, which is not an exception class; "
                f"{_CLASSES}."
            )


def _check_cron(spec: FunctionSpec) -> None:
    """A decorated cron entry: a valid expression, a usable name, no arguments."""
    if not isinstance(spec.cron, str):
        raise InvalidCronEntry(
            f"Cron entry {spec.name!r} has the schedule {shown(spec.cron)}; use a cron "
            "expression string such as '*/5 * * * *'.",
            field="schedule",
        )
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
