"""The `Job` value, its status, its id, and the names of its hash fields.

This is the one place that turns integer epoch ms (what Redis stores) into aware
datetimes (what the public API speaks). `job_hash` maps a Job to and from the
flat fields of its Redis hash.
"""

import enum
import itertools
import json
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from . import serialization

DEFAULT_PRIORITY = 0
MIN_PRIORITY = -100
MAX_PRIORITY = 100
#: The longest duration an option may hold (timeout, TTLs, delays, backoff), about
#: a century: every moment it leads to stays within `datetime`'s range, and its
#: epoch ms stay exact in a double (a Lua number, a sorted-set score).
MAX_DURATION = timedelta(days=36_525)
#: The highest `max_attempts` a job may have: beyond it a job retries for ever in
#: all but name, and its count must stay exact where Lua reads it as a double.
MAX_ATTEMPTS_LIMIT = 1_000_000
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


#: The most attempts a job's history keeps, the oldest dropped first (the
#: scripts' HISTORY_LIMIT in lua/_prelude.lua).
ATTEMPT_HISTORY_LIMIT = 25


@dataclass(frozen=True, slots=True)
class Attempt:
    """One ended attempt of a job, as its `history` field keeps it.

    `outcome` is "succeeded", "retrying", "dead", "cancelled" or "lost" (its worker
    stopped renewing the lease). The error message is cut to 200 bytes; the full
    error of the last attempt is on the job itself.
    """

    number: int
    worker: str
    started_at: datetime | None
    finished_at: datetime | None
    outcome: str
    error_class: str = ""
    error_message: str = ""


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
    # The `history` field as stored: parsed only when asked for, since the worker
    # reads every claimed job and never needs it.
    history_json: str = ""
    progress_message: str = ""  # what job code last said with its progress

    @property
    def history(self) -> list[Attempt]:
        """The job's ended attempts, oldest first, at most ATTEMPT_HISTORY_LIMIT.

        A job that succeeded at its first attempt stores no history (it would
        cost every such job a long field): its one attempt is read from its own
        fields. Entries that cannot be read (a hand-written field) are left out:
        the history is for people and never makes a job unreadable.
        """
        if (
            not self.history_json
            and self.status is JobStatus.SUCCEEDED
            and self.attempts == 1
        ):
            return [
                Attempt(1, self.worker, self.started_at, self.finished_at, "succeeded")
            ]
        return _attempts(self.history_json)

    @property
    def result(self) -> Any:
        """The decoded return value, or None while there is none."""
        if not self.result_json:
            return None
        return serialization.decode(self.result_json, f"Job {self.id!r} result")


def _attempts(history_json: str) -> list[Attempt]:
    if not history_json:
        return []
    try:
        entries = json.loads(history_json)
    except ValueError:
        return []
    if not isinstance(entries, list):
        return []
    attempts = []
    for entry in entries:
        try:
            attempts.append(
                Attempt(
                    number=int(entry["n"]),
                    worker=str(entry["w"]),
                    started_at=from_ms(int(entry["s"])),
                    finished_at=from_ms(int(entry["f"])),
                    outcome=str(entry["o"]),
                    error_class=str(entry.get("e", "")),
                    error_message=str(entry.get("m", "")),
                )
            )
        except (
            AttributeError,
            KeyError,
            TypeError,
            ValueError,
            OverflowError,
            OSError,
        ):
            continue
    return attempts


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
