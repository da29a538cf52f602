"""A `Job` to and from the flat string fields of its Redis hash.

Writing leaves default fields out (`OPTIONAL_FIELD_DEFAULTS`); reading accepts any
content and gives either a Job or an `InvalidJob` that names the bad field, since a
hash may have been written by hand, by an older version, or damaged.
"""

import dataclasses
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from . import serialization
from .exceptions import InvalidJob, SerializationError
from .job import (
    DEFAULT_PRIORITY,
    ENQUEUE_FIELDS,
    OPTIONAL_FIELD_DEFAULTS,
    Job,
    JobError,
    JobStatus,
    duration_ms,
    from_ms,
    now_epoch_ms,
    priority_score,
    to_ms,
)

_STATUSES = {status.value: status for status in JobStatus}


def enqueue_fields(
    job: Job, args_json: str, kwargs_json: str, *, at_front: bool = False
) -> dict[str, str | int]:
    """The hash fields of `job` for the enqueue scripts, defaults left out.

    `at_front` orders a job at a non-default priority ahead of its equals; it has
    no effect on a delayed job, which takes its place when it falls due.
    """
    enq_ms = to_ms(job.enqueued_at) if job.enqueued_at else now_epoch_ms()
    fields: dict[str, str | int] = {
        "id": job.id,
        "func": job.func,
        "queue": job.queue,
        "args": args_json,
        "kwargs": kwargs_json,
        "max_attempts": job.max_attempts,
        "enqueued_ms": enq_ms,
    }
    run_at_ms = to_ms(job.run_at) if job.run_at else 0
    if job.priority != DEFAULT_PRIORITY:
        front = at_front and run_at_ms <= enq_ms
        fields["priority"] = job.priority
        fields["score"] = priority_score(job.priority, enq_ms, at_front=front)
    if job.timeout is not None:
        fields["timeout_ms"] = duration_ms(job.timeout)
    if job.result_ttl is not None:
        fields["result_ttl_ms"] = duration_ms(job.result_ttl)
    if run_at_ms:
        fields["run_at_ms"] = run_at_ms
    if job.unique_key:
        fields["unique_key"] = job.unique_key
    if job.unique_until is not None:
        fields["unique_until_ms"] = to_ms(job.unique_until)
    return fields


def field_table(
    rows: list[dict[str, str | int]],
) -> tuple[list[str], list[list[str | int]]]:
    """The names the `rows` use (in `ENQUEUE_FIELDS` order) and each row's values
    for them, a default where a row leaves a name out: one name list per call."""
    if len(rows) == 1:
        return list(rows[0]), [list(rows[0].values())]
    used = set().union(*rows)
    names = [name for name in ENQUEUE_FIELDS if name in used]
    return names, [
        [row[n] if n in row else OPTIONAL_FIELD_DEFAULTS[n] for n in names]
        for row in rows
    ]


# What reading a damaged hash raises: a missing field (KeyError); text that is
# no number, status or JSON (ValueError, SerializationError); a number or time
# beyond what int, timedelta and datetime hold (ValueError, OverflowError,
# OSError); JSON nested past the recursion limit (RecursionError).
_READ_ERRORS = (
    KeyError,
    ValueError,
    TypeError,
    OverflowError,
    OSError,
    RecursionError,
    SerializationError,
)


def from_fields(fields: dict[str, str]) -> Job:
    """Build a Job from its hash; raise `InvalidJob` naming a missing or bad field.

    Any content of the hash gives a Job or `InvalidJob`, never another error.
    """
    try:
        return _from_fields(fields)
    except _READ_ERRORS as err:
        raise InvalidJob(_fault(fields, err)) from err


def _int(raw: str | None) -> int:
    return int(raw) if raw else 0


def _moment(raw: str | None) -> datetime | None:
    # "0" is unset too: a call that mixes jobs sends the default 0 (field_table).
    return from_ms(int(raw)) if raw else None


def _duration(raw: str | None) -> timedelta | None:
    ms = int(raw) if raw else 0
    return timedelta(milliseconds=ms) if ms else None


def _json(text: str, name: str) -> Any:
    # Most jobs carry no arguments: skip the parser for them.
    if text == "[]":
        return []
    if text == "{}":
        return {}
    return serialization.decode(text, name)


def _args(text: str) -> list[Any]:
    args = _json(text, "args")
    if not isinstance(args, list):
        raise ValueError("args must be a JSON list.")
    return args


def _kwargs(text: str) -> dict[str, Any]:
    kwargs = _json(text, "kwargs")
    if not isinstance(kwargs, dict):
        raise ValueError("kwargs must be a JSON object.")
    return kwargs


def _status(raw: str) -> JobStatus:
    try:
        return _STATUSES[raw]
    except KeyError:
        raise ValueError(f"{raw!r} is not a job status.") from None


def _from_fields(fields: dict[str, str]) -> Job:
    # The worker builds one of these per claimed job: plain lookups, few calls.
    get = fields.get
    error = None
    if get("error_class"):
        error = JobError(
            fields["error_class"], get("error_message", ""), get("traceback", "")
        )
    return _job_of(
        fields["id"],
        fields["func"],
        fields["queue"],
        _args(fields["args"]),
        _kwargs(fields["kwargs"]),
        _status(fields["status"]),
        _int(get("priority")),
        _int(get("attempts")),
        int(fields["max_attempts"]),
        _duration(get("timeout_ms")),
        _duration(get("result_ttl_ms")),
        _moment(get("enqueued_ms")),
        _moment(get("run_at_ms")),
        _moment(get("started_ms")),
        _moment(get("finished_ms")),
        get("worker", ""),
        get("result", ""),
        error,
        float(get("progress") or 0.0),
        _int(get("lost")),
        get("cancel_requested") == "1",
        get("unique_key", ""),
        _moment(get("unique_until_ms")),
        get("history", ""),
        get("progress_message", ""),
    )


# How `_from_fields` reads each field that can be bad, and which must be there:
# `_fault` tries them one by one to name the field at fault. Checking field by
# field only after a failure keeps the common path as fast as before.
_FIELD_READERS: dict[str, Callable[[str], object]] = {
    "id": str,
    "func": str,
    "queue": str,
    "args": _args,
    "kwargs": _kwargs,
    "status": _status,
    "priority": _int,
    "attempts": _int,
    "max_attempts": int,
    "timeout_ms": _duration,
    "result_ttl_ms": _duration,
    "enqueued_ms": _moment,
    "run_at_ms": _moment,
    "started_ms": _moment,
    "finished_ms": _moment,
    "progress": float,
    "lost": _int,
    "unique_until_ms": _moment,
}
_REQUIRED_FIELDS = ("id", "func", "queue", "args", "kwargs", "status", "max_attempts")


def _fault(fields: dict[str, str], err: Exception) -> str:
    """Say which field of `fields` made `_from_fields` raise `err`."""
    job_id = fields.get("id", "")
    for name, read in _FIELD_READERS.items():
        raw = fields.get(name)
        if raw is None:
            if name in _REQUIRED_FIELDS:
                return f"Job {job_id!r} has no {name!r} field in Redis."
            continue
        try:
            read(raw)
        except _READ_ERRORS as field_err:
            return (
                f"Job {job_id!r} has a corrupt field {name!r} in Redis: "
                f"{field_err or type(field_err).__name__}"
            )
    return f"Job {job_id!r} could not be read from Redis: {err!r}"


# The setter of each of Job's slots, in field order. A frozen dataclass's
# __init__ sets every field through object.__setattr__ by name; `_from_fields`
# runs once per claimed job, and setting the slots directly takes half the time.
_SLOT_SETTERS = tuple(Job.__dict__[f.name].__set__ for f in dataclasses.fields(Job))


def _job_of(*values: Any) -> Job:
    """A Job from one value per field, in field order, all given."""
    job = object.__new__(Job)
    for set_slot, value in zip(_SLOT_SETTERS, values, strict=True):
        set_slot(job, value)
    return job
