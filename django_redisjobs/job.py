"""The `Job` value and its mapping to and from the flat fields of a Redis hash.

This is the one place that turns integer epoch ms (what Redis stores) into aware
datetimes (what the public API speaks).
"""

import dataclasses
import enum
import itertools
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from . import serialization
from .exceptions import InvalidJob, SerializationError

DEFAULT_PRIORITY = 0
MIN_PRIORITY = -100
MAX_PRIORITY = 100
# Ready jobs at other priorities sort by (100 - priority) * _PRIORITY_STEP + enqueue
# ms: higher priority first, FIFO within one priority, and every score stays below
# 2**53 so a double holds it exactly.
_PRIORITY_STEP = 10**13


class JobStatus(enum.StrEnum):
    """Where a job is in its life; the value is what the hash stores."""

    PENDING = "pending"  # created inside a transaction, not yet in Redis
    QUEUED = "queued"
    SCHEDULED = "scheduled"
    ACTIVE = "active"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    DEAD = "dead"
    CANCELLED = "cancelled"

    @property
    def is_finished(self) -> bool:
        return self in _FINISHED


_FINISHED = frozenset({JobStatus.SUCCEEDED, JobStatus.DEAD, JobStatus.CANCELLED})
_STATUSES = {status.value: status for status in JobStatus}


# Hash fields the enqueue scripts write, in this order. The first seven are always
# written; the others only when they differ from the default in
# `OPTIONAL_FIELD_DEFAULTS`, which is also what every reader (Python and Lua)
# assumes for an absent field. Leaving defaults out keeps the enqueue call and the
# hash small: a plain job carries 7 fields instead of 14.
ENQUEUE_FIELDS = (
    "id",
    "func",
    "queue",
    "args",
    "kwargs",
    "max_attempts",
    "enqueued_ms",
    "priority",
    "timeout_ms",
    "result_ttl_ms",
    "run_at_ms",
    "score",
    "unique_key",
    "unique_until_ms",
)
OPTIONAL_FIELD_DEFAULTS: dict[str, str | int] = {
    "priority": 0,
    "timeout_ms": 0,
    "result_ttl_ms": 0,
    "run_at_ms": 0,
    "score": "",
    "unique_key": "",
    "unique_until_ms": 0,
}


@dataclass(frozen=True, slots=True)
class JobError:
    """What a failed attempt raised, stored as text so no exception object crosses."""

    exc_class: str
    message: str
    traceback: str = ""


@dataclass(frozen=True, slots=True)
class Job:
    """One unit of work, as stored in its Redis hash."""

    id: str
    func: str
    queue: str
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    status: JobStatus = JobStatus.QUEUED
    priority: int = DEFAULT_PRIORITY
    attempts: int = 0
    max_attempts: int = 1
    timeout: timedelta | None = None
    result_ttl: timedelta | None = None
    enqueued_at: datetime | None = None
    run_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    worker: str = ""
    result_json: str = ""
    error: JobError | None = None
    progress: float = 0.0
    lost: int = 0
    cancel_requested: bool = False
    unique_key: str = ""
    unique_until: datetime | None = None  # end of the `unique_for` window

    @property
    def result(self) -> Any:
        """The decoded return value, or None while there is none."""
        if not self.result_json:
            return None
        return serialization.decode(self.result_json, f"Job {self.id!r} result")


def new_job_id(now_ms: int | None = None) -> str:
    """Return a 32-hex id: 48 bits of ms time, a 24-bit process sequence, then 56
    random bits.

    Ids sort by age, and within one millisecond by creation order in this process:
    jobs of one priority share a score for each ms, and Redis then orders them by
    id, so FIFO holds for a producer that enqueues several jobs per ms. The random
    bits tell processes apart, not secrets: they come from the `random` module,
    seeded from os.urandom at import and again in every forked child, since
    os.urandom itself is a system call per id.
    """
    ms = now_ms if now_ms is not None else now_epoch_ms()
    sequence = next(_id_sequence) & 0xFFFFFF
    return f"{ms & 0xFFFFFFFFFFFF:012x}{sequence:06x}{random.getrandbits(56):014x}"


# next() on itertools.count is atomic under the GIL: no lock needed.
_id_sequence = itertools.count()


def now_epoch_ms() -> int:
    return time.time_ns() // 1_000_000


def to_ms(moment: datetime) -> int:
    """Convert an aware datetime to epoch ms."""
    if moment.tzinfo is None:
        raise ValueError(f"Expected an aware datetime, got {moment!r}.")
    return round(moment.timestamp() * 1000)


def from_ms(ms: int) -> datetime | None:
    """Convert epoch ms to an aware UTC datetime; 0 means unset."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC) if ms else None


def duration_ms(value: timedelta | None) -> int:
    """A timedelta as whole ms; None (no limit) is 0."""
    return int(value.total_seconds() * 1000) if value is not None else 0


def priority_score(priority: int, enqueued_ms: int, *, at_front: bool = False) -> int:
    """Sorted-set score for a ready job at a non-default priority.

    `at_front` puts the job ahead of every job of its priority, the latest such
    enqueue first (LIFO, like LPUSH on the default list): enqueue ms stay below
    `_PRIORITY_STEP`, so subtracting them never leaves the priority's band.
    """
    band = (MAX_PRIORITY - priority) * _PRIORITY_STEP
    return band - enqueued_ms if at_front else band + enqueued_ms


# Jobs with a score below this bound have a priority above the default.
DEFAULT_PRIORITY_BOUND = priority_score(DEFAULT_PRIORITY, 0)


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
