"""Bounded reads for the operator's console (the admin pages and `manage.py
jobs`): per-queue summaries, a page of jobs, workers, the outcome counters and
what the server says about itself.

Every read is a range with a limit plus pipelined hash reads of that range:
never KEYS or SCAN, so a page costs the same with a thousand jobs or millions.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from .. import keys
from ..exceptions import InvalidJob
from ..job import Job
from ..job_hash import from_fields
from .base import redis_call
from .reads import ReadOps
from .records import JobState
from .workers import LOST_WORKERS_KEPT_MS

#: How far a filter by function looks into a listing (ids read, newest first).
FILTER_WINDOW = 2_000
#: The most workers, and active jobs per queue, the console lists.
WORKERS_SHOWN = 200
ACTIVE_SHOWN = 500
OUTCOMES = ("succeeded", "retrying", "dead", "cancelled")


@dataclass(frozen=True, slots=True)
class QueueSummary:
    """One queue's counts per state, and whether it is paused.

    `retrying` counts the jobs among `counts[JobState.SCHEDULED]` that wait for a
    retry rather than a delay (the `retrying` index).
    """

    name: str
    counts: dict[JobState, int]
    paused: bool
    retrying: int = 0

    @property
    def delayed(self) -> int:
        """Scheduled jobs that wait for their delay or run_at, not a retry."""
        return max(self.counts[JobState.SCHEDULED] - self.retrying, 0)


@dataclass(frozen=True, slots=True)
class JobRow:
    """One listed id: its job, or why there is none (expired, damaged)."""

    job_id: str
    job: Job | None
    problem: str = ""


@dataclass(frozen=True, slots=True)
class WorkerRecord:
    """A live worker's hash as its heartbeat wrote it."""

    worker_id: str
    expires_ms: int
    fields: dict[str, str]


@dataclass(frozen=True, slots=True)
class HeldJob:
    """An active job: who holds it and until when its lease runs."""

    job_id: str
    queue: str
    func: str
    worker: str
    lease_deadline_ms: int


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """What Redis says about itself (INFO); absent facts are empty or 0."""

    version: str
    used_memory: int
    maxmemory: int
    maxmemory_policy: str
    aof_enabled: bool
    rdb_changes_since_save: int


_STATE_KEYS = {
    JobState.SCHEDULED: keys.scheduled,
    JobState.ACTIVE: keys.active,
    JobState.SUCCEEDED: keys.succeeded,
    JobState.DEAD: keys.dead,
    JobState.CANCELLED: keys.cancelled,
}


class ConsoleReads(ReadOps):
    """Reads for people: tolerant of damaged hashes, bounded in size."""

    @redis_call("Could not read from Redis")
    def summaries(self, queues: Sequence[str]) -> list[QueueSummary]:
        """Counts and the paused flag of each queue, in one round trip."""
        p = self.prefix
        with self.client.pipeline(transaction=False) as pipe:
            for queue in queues:
                pipe.llen(keys.ready(p, queue))
                pipe.zcard(keys.prioritized(p, queue))
                for state_key in _STATE_KEYS.values():
                    pipe.zcard(state_key(p, queue))
                pipe.exists(keys.paused(p, queue))
                pipe.zcard(keys.retrying(p, queue))
            replies = pipe.execute()
        width = 4 + len(_STATE_KEYS)
        found = []
        for index, queue in enumerate(queues):
            ready, prio, *sized, paused, retrying = replies[
                index * width : (index + 1) * width
            ]
            counts = {JobState.QUEUED: ready + prio}
            counts.update(zip(_STATE_KEYS, sized, strict=True))
            found.append(QueueSummary(queue, counts, bool(paused), retrying))
        return found

    @redis_call("Could not read from Redis")
    def rows(self, job_ids: Sequence[str], queue: str) -> list[JobRow]:
        """The jobs of `job_ids` in order, read in one round trip; a gone or
        damaged hash is a row with a `problem`, never an error."""
        with self.client.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hgetall(keys.job(self.prefix, queue, job_id))
            replies = pipe.execute()
        return [
            _row(job_id, fields)
            for job_id, fields in zip(job_ids, replies, strict=True)
        ]

    @redis_call("Could not read from Redis")
    def job_fields(self, job_id: str, queue: str) -> dict[str, str]:
        """Every field of the job's hash as stored; empty when there is none."""
        return cast(
            dict[str, str], self.client.hgetall(keys.job(self.prefix, queue, job_id))
        )

    @redis_call("Could not read from Redis")
    def ids_of_function(
        self, queue: str, state: JobState, func: str, window: int = FILTER_WINDOW
    ) -> tuple[list[str], int]:
        """Ids in `state` whose function is `func` (exact dotted name, or a
        suffix after a dot), among the first `window` ids of the listing; the
        ids and how many ids were looked at."""
        ids = self.list_ids(queue, state, 0, window)
        with self.client.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hget(keys.job(self.prefix, queue, job_id), "func")
            funcs = pipe.execute()
        matched = [
            job_id
            for job_id, name in zip(ids, funcs, strict=True)
            if name and (name == func or name.endswith("." + func))
        ]
        return matched, len(ids)

    @redis_call("Could not read from Redis")
    def live_workers(self) -> list[WorkerRecord]:
        """The workers with a heartbeat, soonest expiry first, at most
        `WORKERS_SHOWN`; a worker whose hash has expired is left out."""
        members = cast(
            list[tuple[str, float]],
            self.client.zrange(
                keys.workers(self.prefix), 0, WORKERS_SHOWN - 1, withscores=True
            ),
        )
        with self.client.pipeline(transaction=False) as pipe:
            for worker_id, _ in members:
                pipe.hgetall(keys.worker(self.prefix, worker_id))
            hashes = pipe.execute()
        return [
            WorkerRecord(worker_id, int(score), fields)
            for (worker_id, score), fields in zip(members, hashes, strict=True)
            if fields
        ]

    @redis_call("Could not read from Redis")
    def lost_workers(self, now_ms: int) -> list[tuple[str, int]]:
        """Workers whose heartbeat expired within the last hour, newest first,
        with that expiry's ms (recorded by `trim_workers`)."""
        members = cast(
            list[tuple[str, float]],
            self.client.zrange(
                keys.lost_workers(self.prefix),
                "+inf",
                now_ms - LOST_WORKERS_KEPT_MS,
                byscore=True,
                desc=True,
                offset=0,
                num=WORKERS_SHOWN,
                withscores=True,
            ),
        )
        return [(member, int(score)) for member, score in members]

    @redis_call("Could not read from Redis")
    def held_jobs(self, queues: Sequence[str]) -> list[HeldJob]:
        """Active jobs of `queues`, soonest lease deadline first, at most
        `ACTIVE_SHOWN` per queue, with the worker holding each."""
        p = self.prefix
        with self.client.pipeline(transaction=False) as pipe:
            for queue in queues:
                pipe.zrange(keys.active(p, queue), 0, ACTIVE_SHOWN - 1, withscores=True)
            listed = pipe.execute()
        pairs = [
            (queue, str(job_id), int(score))
            for queue, members in zip(queues, listed, strict=True)
            for job_id, score in members
        ]
        with self.client.pipeline(transaction=False) as pipe:
            for queue, job_id, _ in pairs:
                pipe.hmget(keys.job(p, queue, job_id), ["func", "worker"])
            fields = pipe.execute()
        return [
            HeldJob(job_id, queue, func or "", worker or "", deadline)
            for (queue, job_id, deadline), (func, worker) in zip(
                pairs, fields, strict=True
            )
        ]

    @redis_call("Could not read from Redis")
    def outcome_counts(
        self, queues: Sequence[str], unit: str, first: int, count: int
    ) -> list[dict[str, int]]:
        """Outcomes recorded per bucket, summed over `queues`: `count` buckets of
        `unit` ("m" minutes or "h" hours since the epoch) from `first` on."""
        bucket_key = keys.stats_minute if unit == "m" else keys.stats_hour
        with self.client.pipeline(transaction=False) as pipe:
            for queue in queues:
                for bucket in range(first, first + count):
                    pipe.hmget(bucket_key(self.prefix, queue, bucket), OUTCOMES)
            replies = pipe.execute()
        sums = [dict.fromkeys(OUTCOMES, 0) for _ in range(count)]
        for index, values in enumerate(replies):
            for outcome, value in zip(OUTCOMES, values, strict=True):
                sums[index % count][outcome] += _int(value)
        return sums

    @redis_call("Could not read from Redis")
    def server_info(self) -> ServerInfo:
        """Version, memory, eviction policy and persistence, from INFO."""
        info: dict[str, Any] = {}
        for section in ("server", "memory", "persistence"):
            info.update(self.client.info(section))
        return ServerInfo(
            str(info.get("redis_version", "")),
            _int(info.get("used_memory")),
            _int(info.get("maxmemory")),
            str(info.get("maxmemory_policy", "")),
            bool(_int(info.get("aof_enabled"))),
            _int(info.get("rdb_changes_since_last_save")),
        )


def _int(value: object) -> int:
    try:
        return int(cast(Any, value))
    except (TypeError, ValueError):
        return 0


def _row(job_id: str, fields: dict[str, str]) -> JobRow:
    if not fields:
        return JobRow(job_id, None, "The job's hash is gone (expired or deleted).")
    try:
        return JobRow(job_id, from_fields(fields))
    except InvalidJob as err:
        return JobRow(job_id, None, str(err))
