"""The ``OPTIONS`` of a django.tasks backend alias: this app's extras, checked.

Django's `Task` has no room for attempts, timeouts or uniqueness, so they are set
per alias in ``TASKS[alias]["OPTIONS"]``; a call picks an alias with
``task.using(backend=...)``. The keys mirror ``REDISJOBS`` keys and follow the
same rules (`conf.check_value`); one left out takes its ``REDISJOBS`` value when a
task is enqueued. Pure: the backend passes the dict Django gave it.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from .conf import Problem, check_value
from .exceptions import shown

#: OPTIONS keys that take a REDISJOBS key's values and default to its setting.
MIRRORED_KEYS = (
    "ON_COMMIT",
    "MAX_ATTEMPTS",
    "BACKOFF_BASE_S",
    "BACKOFF_MAX_S",
    "BACKOFF_JITTER",
    "TIMEOUT_S",
    "RESULT_TTL_S",
)
#: OPTIONS keys of the backend's own: unique jobs, as ``@background(unique=...,
#: unique_for=...)`` makes them.
OWN_KEYS = ("UNIQUE", "UNIQUE_FOR_S")
OPTION_KEYS = (*MIRRORED_KEYS, *OWN_KEYS)


@dataclass(frozen=True)
class TaskOptions:
    """One alias's OPTIONS; None leaves the value to ``REDISJOBS``."""

    on_commit: bool | None = None
    max_attempts: int | None = None
    backoff_base: timedelta | None = None
    backoff_max: timedelta | None = None
    jitter: bool | None = None
    timeout: timedelta | None = None
    result_ttl: timedelta | None = None
    unique: bool = False
    unique_for: timedelta | None = None


def _hint(key: str, value: Any) -> str | None:
    """None when `value` is valid for the option `key`, else what to use."""
    if key in MIRRORED_KEYS:
        return check_value(key, value)
    if key == "UNIQUE":
        return None if isinstance(value, bool) else "Use True or False."
    # UNIQUE_FOR_S: a duration like RESULT_TTL_S's, or None for "until it ends".
    return None if value is None else check_value("RESULT_TTL_S", value)


def _seconds(value: float | None) -> timedelta | None:
    return None if value is None else timedelta(seconds=value)


def parse_options(alias: str, raw: Any) -> tuple[TaskOptions, list[Problem]]:
    """The options `raw` sets for `alias`, and a `Problem` per bad key or value.

    A bad value is left out of the options (its REDISJOBS value applies), so the
    alias still works while ``check`` reports the problem.
    """
    where = f"TASKS[{alias!r}]['OPTIONS']"
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        return TaskOptions(), [
            Problem(where, f"is {shown(raw)}, not a dict.", "Use a dict.")
        ]
    problems: list[Problem] = []
    valid: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in OPTION_KEYS:
            problems.append(
                Problem(
                    where,
                    f"has the key {shown(key)}, which is not a known option.",
                    f"Known options: {', '.join(OPTION_KEYS)}.",
                )
            )
            continue
        hint = _hint(key, value)
        if hint is None:
            valid[key] = value
        else:
            problems.append(Problem(f"{where}[{key!r}]", f"is {shown(value)}.", hint))
    return _build(valid), problems


def _build(valid: dict[str, Any]) -> TaskOptions:
    unique_for = _seconds(valid.get("UNIQUE_FOR_S"))
    return TaskOptions(
        on_commit=valid.get("ON_COMMIT"),
        max_attempts=valid.get("MAX_ATTEMPTS"),
        backoff_base=_seconds(valid.get("BACKOFF_BASE_S")),
        backoff_max=_seconds(valid.get("BACKOFF_MAX_S")),
        jitter=valid.get("BACKOFF_JITTER"),
        timeout=_seconds(valid.get("TIMEOUT_S")),
        result_ttl=_seconds(valid.get("RESULT_TTL_S")),
        # As with @background: a window implies uniqueness.
        unique=bool(valid.get("UNIQUE")) or unique_for is not None,
        unique_for=unique_for,
    )
