"""All job-state reads and writes in Redis.

Every transition of a job goes through a method here, and each multi-key transition
is one Lua script call (see `lua/`). The worker, handles, the scheduler and the
admin all use `JobStore`, so there is one implementation of the state machine.
"""

import enum
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from . import keys
from .conf import Settings, get_settings
from .connection import Connection, get_connection
from .exceptions import JobDoesNotExist, RedisUnavailable
from .job import (
    DEFAULT_PRIORITY_BOUND,
    ENQUEUE_FIELDS,
    Job,
    JobError,
    JobStatus,
    duration_ms,
    enqueue_values,
    from_fields,
)
from .scripts import Claimed, Recovered, parse_codes

WORKER_LOST = "django_redisjobs.WorkerLost"

REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError)


class JobState(enum.StrEnum):
    """The per-queue collections a job id can sit in, for paged listings."""

    QUEUED = "queued"
    SCHEDULED = "scheduled"
    ACTIVE = "active"
    SUCCEEDED = "succeeded"
    DEAD = "dead"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class EnqueueRequest:
    """A job to store, plus where in the ready list it goes."""

    job: Job
    args_json: str
    kwargs_json: str
    at_front: bool = False


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one claimed attempt ended, to be recorded by `JobStore.finish`."""

    job_id: str
    queue: str
    attempt: int
    status: str  # a JobStatus value, or "requeued"
    ttl_ms: int = 0
    due_ms: int = 0
    result_json: str = ""
    error: JobError | None = None

    def script_args(self) -> list[str | int]:
        error = self.error or JobError("", "", "")
        return [
            self.job_id,
            self.attempt,
            self.status,
            self.due_ms,
            self.ttl_ms,
            self.result_json,
            error.exc_class,
            error.message,
            error.traceback,
        ]


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """What a worker publishes about itself while it lives."""

    worker_id: str
    hostname: str
    pid: int
    queues: tuple[str, ...]
    concurrency: int
    started_ms: int


class JobStore:
    """Job storage in one Redis, under one key prefix."""

    def __init__(self, connection: Connection, settings: Settings) -> None:
        self.connection = connection
        self.client = connection.client
        self.scripts = connection.scripts
        self.settings = settings
        self.prefix = settings.prefix

    # -- key lists, in the order each script documents ----------------------

    def _enqueue_keys(self, queue: str) -> list[str]:
        p = self.prefix
        return [
            keys.ready(p, queue),
            keys.prioritized(p, queue),
            keys.scheduled(p, queue),
            keys.marker(p, queue),
            keys.job_prefix(p, queue),
        ]

    def _claim_keys(self, queue: str) -> list[str]:
        p = self.prefix
        return [
            keys.ready(p, queue),
            keys.prioritized(p, queue),
            keys.active(p, queue),
            keys.marker(p, queue),
            keys.job_prefix(p, queue),
        ]

    def _finish_keys(self, queue: str) -> list[str]:
        p = self.prefix
        return [
            keys.active(p, queue),
            keys.scheduled(p, queue),
            keys.succeeded(p, queue),
            keys.dead(p, queue),
            keys.cancelled(p, queue),
            keys.ready(p, queue),
            keys.prioritized(p, queue),
            keys.marker(p, queue),
            keys.job_prefix(p, queue),
        ]

    # -- enqueue ------------------------------------------------------------

    def enqueue(self, requests: Sequence[EnqueueRequest], now_ms: int) -> list[bool]:
        """Store jobs in one round trip; True per job stored, False per known id.

        Raises `RedisUnavailable` when Redis cannot be reached; then nothing of a
        queue's batch was stored.
        """
        by_queue: dict[str, list[int]] = defaultdict(list)
        for index, request in enumerate(requests):
            by_queue[request.job.queue].append(index)
        stored = [False] * len(requests)
        if not requests:
            return stored
        try:
            return self._enqueue_pipelined(requests, by_queue, now_ms, stored)
        except REDIS_ERRORS as err:
            raise RedisUnavailable(
                f"Could not store {len(requests)} job(s) in Redis: {err}"
            ) from err

    def _enqueue_pipelined(
        self,
        requests: Sequence[EnqueueRequest],
        by_queue: Mapping[str, list[int]],
        now_ms: int,
        stored: list[bool],
    ) -> list[bool]:
        with self.client.pipeline(transaction=False) as pipe:
            # SADD on every enqueue, in the same round trip: the set goes with the
            # data on a restart without persistence or a FLUSHDB, and a cache in
            # the process would never add the queue back.
            pipe.sadd(keys.queues(self.prefix), *sorted(by_queue))
            for queue, indexes in by_queue.items():
                self.scripts.queue_in(
                    pipe,
                    "enqueue_jobs",
                    self._enqueue_keys(queue),
                    self._enqueue_args(requests, indexes, now_ms),
                )
            replies = self.scripts.execute(pipe)
        for indexes, codes in zip(by_queue.values(), replies[1:], strict=True):
            for index, code in zip(indexes, parse_codes(codes), strict=True):
                stored[index] = code == 1
        return stored

    @staticmethod
    def _enqueue_args(
        requests: Sequence[EnqueueRequest], indexes: Iterable[int], now_ms: int
    ) -> list[Any]:
        args: list[Any] = [now_ms, len(ENQUEUE_FIELDS), *ENQUEUE_FIELDS]
        for index in indexes:
            request = requests[index]
            args.append(1 if request.at_front else 0)
            args.extend(
                enqueue_values(request.job, request.args_json, request.kwargs_json)
            )
        return args

    # -- reads --------------------------------------------------------------

    def get(self, job_id: str, queue: str) -> Job:
        """Return the job; raise `JobDoesNotExist` (or `InvalidJob` if corrupt)."""
        fields = self._read(
            lambda: self.client.hgetall(keys.job(self.prefix, queue, job_id))
        )
        if not fields:
            raise JobDoesNotExist(f"Job {job_id!r} does not exist in queue {queue!r}.")
        return from_fields(fields)

    def get_many(self, job_ids: Sequence[str], queue: str) -> list[Job | None]:
        """Return jobs in the order of `job_ids`; None where a job no longer exists."""
        with self.client.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hgetall(keys.job(self.prefix, queue, job_id))
            replies = self._read(pipe.execute)
        return [from_fields(fields) if fields else None for fields in replies]

    def locate(self, job_id: str) -> str:
        """Return the queue that holds `job_id`; raise `JobDoesNotExist` if none."""
        queues = self.known_queues()
        with self.client.pipeline(transaction=False) as pipe:
            for queue in queues:
                pipe.exists(keys.job(self.prefix, queue, job_id))
            found = self._read(pipe.execute)
        for queue, exists in zip(queues, found, strict=True):
            if exists:
                return queue
        raise JobDoesNotExist(f"Job {job_id!r} does not exist in any queue.")

    def known_queues(self) -> list[str]:
        """Every queue that has had a job or a worker, sorted by name."""
        return sorted(
            self._read(lambda: self.client.smembers(keys.queues(self.prefix)))
        )

    def add_known_queues(self, queues: Iterable[str]) -> None:
        names = sorted(set(queues))
        if names:
            self.client.sadd(keys.queues(self.prefix), *names)

    def counts(self, queue: str) -> dict[JobState, int]:
        """How many job ids sit in each collection of `queue`."""
        p = self.prefix
        with self.client.pipeline(transaction=False) as pipe:
            pipe.llen(keys.ready(p, queue))
            pipe.zcard(keys.prioritized(p, queue))
            pipe.zcard(keys.scheduled(p, queue))
            pipe.zcard(keys.active(p, queue))
            pipe.zcard(keys.succeeded(p, queue))
            pipe.zcard(keys.dead(p, queue))
            pipe.zcard(keys.cancelled(p, queue))
            ready, prio, sched, active, ok, dead, cancelled = self._read(pipe.execute)
        return {
            JobState.QUEUED: ready + prio,
            JobState.SCHEDULED: sched,
            JobState.ACTIVE: active,
            JobState.SUCCEEDED: ok,
            JobState.DEAD: dead,
            JobState.CANCELLED: cancelled,
        }

    def list_ids(
        self, queue: str, state: JobState, offset: int, limit: int
    ) -> list[str]:
        """A page of job ids in `state`: ready ones in claim order, ended ones newest
        first."""
        if limit <= 0:
            # ZRANGE 0 -1 would be the whole collection, not an empty page.
            return []
        if state is JobState.QUEUED:
            return self._list_queued(queue, offset, limit)
        p = self.prefix
        stop = offset + limit - 1
        collection = {
            JobState.SCHEDULED: keys.scheduled(p, queue),
            JobState.ACTIVE: keys.active(p, queue),
            JobState.SUCCEEDED: keys.succeeded(p, queue),
            JobState.DEAD: keys.dead(p, queue),
            JobState.CANCELLED: keys.cancelled(p, queue),
        }[state]
        newest_first = state in (JobState.SUCCEEDED, JobState.DEAD, JobState.CANCELLED)
        return list(
            self._read(
                lambda: self.client.zrange(collection, offset, stop, desc=newest_first)
            )
        )

    def _list_queued(self, queue: str, offset: int, limit: int) -> list[str]:
        """Ready ids in claim order (claim_jobs.lua): priorities above the default,
        then the list, then priorities below it."""
        p = self.prefix
        prio, ready = keys.prioritized(p, queue), keys.ready(p, queue)
        bound = DEFAULT_PRIORITY_BOUND
        with self.client.pipeline(transaction=False) as pipe:
            pipe.zcount(prio, "-inf", f"({bound}")
            pipe.llen(ready)
            n_high, n_list = self._read(pipe.execute)
        ids: list[str] = []
        if offset < n_high:
            ids += self._read(
                lambda: self.client.zrange(
                    prio, "-inf", f"({bound}", byscore=True, offset=offset, num=limit
                )
            )
        start = max(offset - n_high, 0)
        if len(ids) < limit and start < n_list:
            stop = start + limit - len(ids) - 1
            ids += self._read(lambda: self.client.lrange(ready, start, stop))
        low_start = max(offset - n_high - n_list, 0)
        if len(ids) < limit:
            num = limit - len(ids)
            ids += self._read(
                lambda: self.client.zrange(
                    prio, bound, "+inf", byscore=True, offset=low_start, num=num
                )
            )
        return ids

    def _read(self, call: Any) -> Any:
        try:
            return call()
        except REDIS_ERRORS as err:
            raise RedisUnavailable(f"Could not read from Redis: {err}") from err

    # -- worker side --------------------------------------------------------

    def claim(
        self, queue: str, worker_id: str, limit: int, now_ms: int, lease_ms: int
    ) -> list[Claimed]:
        """Lease up to `limit` ready jobs of `queue` to `worker_id`."""
        return self.scripts.claim_jobs(
            self._claim_keys(queue),
            [now_ms, now_ms + lease_ms, worker_id, limit, DEFAULT_PRIORITY_BOUND],
        )

    def finish(
        self, outcomes: Sequence[Outcome], worker_id: str, now_ms: int
    ) -> list[int]:
        """Record attempt outcomes in one round trip; per outcome the script's code."""
        by_queue: dict[str, list[int]] = defaultdict(list)
        for index, outcome in enumerate(outcomes):
            by_queue[outcome.queue].append(index)
        codes = [0] * len(outcomes)
        with self.client.pipeline(transaction=False) as pipe:
            for queue, indexes in by_queue.items():
                args: list[Any] = [
                    now_ms,
                    worker_id,
                    keys.job_channel_prefix(self.prefix, queue),
                ]
                for index in indexes:
                    args.extend(outcomes[index].script_args())
                self.scripts.queue_in(
                    pipe, "finish_jobs", self._finish_keys(queue), args
                )
            replies = self.scripts.execute(pipe)
        for indexes, reply in zip(by_queue.values(), replies, strict=True):
            for index, code in zip(indexes, parse_codes(reply), strict=True):
                codes[index] = code
        return codes

    def renew_leases(self, held: Mapping[str, Sequence[str]], deadline_ms: int) -> None:
        """Push the lease deadline of held jobs; XX leaves recovered ids alone."""
        with self.client.pipeline(transaction=False) as pipe:
            for queue, job_ids in held.items():
                if job_ids:
                    mapping = dict.fromkeys(job_ids, deadline_ms)
                    pipe.zadd(keys.active(self.prefix, queue), mapping, xx=True)
            pipe.execute()

    def wait_for_ready(self, queues: Sequence[str], timeout_s: float) -> bool:
        """Block until one of `queues` may have ready jobs, or the timeout passes."""
        markers = [keys.marker(self.prefix, queue) for queue in queues]
        return self.client.bzpopmin(markers, timeout=timeout_s) is not None

    def promote_due(self, queue: str, now_ms: int, limit: int) -> tuple[int, int]:
        """Make due scheduled jobs ready; (moved, next due ms or -1)."""
        p = self.prefix
        return self.scripts.promote_due(
            [
                keys.scheduled(p, queue),
                keys.ready(p, queue),
                keys.prioritized(p, queue),
                keys.marker(p, queue),
                keys.job_prefix(p, queue),
            ],
            [now_ms, limit],
        )

    def recover_expired(self, queue: str, now_ms: int, limit: int) -> Recovered:
        """Requeue (or bury) jobs whose lease ran out: their worker is gone."""
        p = self.prefix
        return self.scripts.recover_expired(
            [
                keys.active(p, queue),
                keys.ready(p, queue),
                keys.prioritized(p, queue),
                keys.dead(p, queue),
                keys.marker(p, queue),
                keys.job_prefix(p, queue),
            ],
            [
                now_ms,
                limit,
                duration_ms(self.settings.dead_ttl),
                keys.job_channel_prefix(p, queue),
                WORKER_LOST,
            ],
        )

    def trim_finished(self, queue: str, now_ms: int) -> None:
        """Drop ids of finished jobs whose hashes have expired from the listings."""
        p = self.prefix
        result_cutoff = now_ms - duration_ms(self.settings.result_ttl)
        dead_cutoff = now_ms - duration_ms(self.settings.dead_ttl)
        with self.client.pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore(keys.succeeded(p, queue), "-inf", result_cutoff)
            pipe.zremrangebyscore(keys.cancelled(p, queue), "-inf", result_cutoff)
            pipe.zremrangebyscore(keys.dead(p, queue), "-inf", dead_cutoff)
            pipe.execute()

    def heartbeat(
        self, info: WorkerInfo, expires_ms: int, stats: dict[str, int]
    ) -> None:
        """Publish that the worker lives until `expires_ms`, with its counters."""
        key = keys.worker(self.prefix, info.worker_id)
        with self.client.pipeline(transaction=False) as pipe:
            pipe.zadd(keys.workers(self.prefix), {info.worker_id: expires_ms})
            fields: dict[str | bytes, str | int] = {
                "hostname": info.hostname,
                "pid": info.pid,
                "queues": ",".join(info.queues),
                "concurrency": info.concurrency,
                "started_ms": info.started_ms,
                "expires_ms": expires_ms,
            }
            fields.update(stats)
            pipe.hset(key, mapping=fields)  # type: ignore[arg-type]  # redis-py wants a wider dict
            pipe.pexpireat(key, expires_ms)
            pipe.execute()

    def trim_workers(self, now_ms: int) -> int:
        """Drop workers whose heartbeat expired (their hashes expire by themselves)."""
        return int(
            self.client.zremrangebyscore(keys.workers(self.prefix), "-inf", now_ms)
        )

    def unregister_worker(self, worker_id: str) -> None:
        with self.client.pipeline(transaction=False) as pipe:
            pipe.zrem(keys.workers(self.prefix), worker_id)
            pipe.delete(keys.worker(self.prefix, worker_id))
            pipe.execute()

    def server_info(self, section: str) -> dict[str, Any]:
        """Redis INFO / CONFIG facts the worker checks at start (persistence)."""
        return dict(self.client.info(section))

    def set_progress(self, job_id: str, queue: str, fraction: float) -> None:
        """Store a running job's progress (0 to 1)."""
        self.client.hset(keys.job(self.prefix, queue, job_id), "progress", fraction)

    # -- handles ------------------------------------------------------------

    def end_channel(self, job_id: str, queue: str) -> str:
        """The pub/sub channel on which the job's end is announced."""
        return keys.job_channel(self.prefix, queue, job_id)


def get_store() -> JobStore:
    """The `JobStore` for the current settings, sharing the process's connection."""
    connection = get_connection()
    store = _stores.get(id(connection))
    if store is None or store.connection is not connection:
        store = JobStore(connection, get_settings())
        _stores[id(connection)] = store
    return store


_stores: dict[int, JobStore] = {}


__all__ = [
    "REDIS_ERRORS",
    "WORKER_LOST",
    "Claimed",
    "EnqueueRequest",
    "JobState",
    "JobStatus",
    "JobStore",
    "Outcome",
    "Recovered",
    "WorkerInfo",
    "get_store",
]
