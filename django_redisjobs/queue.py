"""All job-state reads and writes in Redis.

Every transition of a job goes through a method here, and each multi-key transition
is one Lua script call (see `lua/`). The worker, handles, the scheduler and the
admin all use `JobStore`, so there is one implementation of the state machine.
"""

import contextlib
import enum
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

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
    from_ms,
    to_ms,
)
from .scripts import Claimed, CronClaim, Recovered, parse_codes, parse_enqueued

WORKER_LOST = "django_redisjobs.WorkerLost"

QUEUE_NAME_REFRESH_MS = 10_000

# Redis cannot serve the command now, but may a moment later: unreachable, timed
# out, loading its data, full under maxmemory-policy noeviction, or a replica
# that a failover has not promoted yet. Callers retry (the worker) or report
# `RedisUnavailable` (enqueue, reads).
REDIS_ERRORS = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.exceptions.OutOfMemoryError,
    redis.exceptions.ReadOnlyError,
)


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
class Placed:
    """What became of one `EnqueueRequest`."""

    job_id: str  # the request's own id, or the id of the job holding its unique key
    stored: bool  # False: a replayed id, or a unique key another job holds


class Cancelled(enum.IntEnum):
    """What `JobStore.cancel` did, as `cancel_job.lua` reports it."""

    ENDED = 1  # it was waiting; now it is cancelled
    REQUESTED = 2  # it is active; its cancel_requested flag is set
    ALREADY_FINISHED = 0  # it had ended; nothing changed


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
class CronState:
    """What Redis holds about one cron entry (None: nothing yet)."""

    handled_until: datetime | None  # fire times up to here were claimed or skipped
    last_fired: datetime | None  # the fire time of the last job enqueued
    seen: datetime | None  # when a scheduler that knows the entry last said so


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
        # Queue name -> ms of this process's last SADD of it to the queues set.
        self._queue_names_sent: dict[str, int] = {}

    # -- key lists, in the order each script documents ----------------------

    def _enqueue_keys(self, queue: str) -> list[str]:
        p = self.prefix
        return [
            keys.ready(p, queue),
            keys.prioritized(p, queue),
            keys.scheduled(p, queue),
            keys.marker(p, queue),
            keys.job_prefix(p, queue),
            keys.unique_prefix(p, queue),
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
            keys.unique_prefix(p, queue),
        ]

    # -- enqueue ------------------------------------------------------------

    def enqueue(self, requests: Sequence[EnqueueRequest], now_ms: int) -> list[bool]:
        """Store jobs in one round trip; True per job stored, False per known id or
        per unique key another job holds (see `enqueue_detailed`).

        Raises `RedisUnavailable` when Redis cannot be reached; then nothing of a
        queue's batch was stored.
        """
        return [placed.stored for placed in self.enqueue_detailed(requests, now_ms)]

    def enqueue_detailed(
        self, requests: Sequence[EnqueueRequest], now_ms: int
    ) -> list[Placed]:
        """Like `enqueue`, but say per request which job stands for it: itself, or
        the job that holds its unique key (then nothing was stored for it)."""
        codes = self._enqueue_codes(requests, now_ms)
        return [
            Placed(code, False)
            if isinstance(code, str)
            else Placed(r.job.id, code == 1)
            for r, code in zip(requests, codes, strict=True)
        ]

    def _enqueue_codes(
        self, requests: Sequence[EnqueueRequest], now_ms: int
    ) -> list[int | str]:
        by_queue: dict[str, list[int]] = defaultdict(list)
        for index, request in enumerate(requests):
            by_queue[request.job.queue].append(index)
        stored: list[int | str] = [0] * len(requests)
        if not requests:
            return stored
        try:
            stale = self._stale_queue_names(by_queue, now_ms)
            if len(by_queue) == 1 and not stale:
                # The common case: one script call, no pipeline around it.
                ((queue, indexes),) = by_queue.items()
                codes = self.scripts.enqueue_jobs(
                    self._enqueue_keys(queue),
                    self._enqueue_args(requests, indexes, now_ms),
                )
                for index, code in zip(indexes, codes, strict=True):
                    stored[index] = code
                return stored
            stored = self._enqueue_pipelined(requests, by_queue, now_ms, stored, stale)
            self._queue_names_sent.update(dict.fromkeys(stale, now_ms))
            return stored
        except redis.RedisError as err:
            # Out of memory or a read-only replica loses the job as surely as an
            # outage: the caller gets one error type for "not stored".
            raise RedisUnavailable(
                f"Could not store {len(requests)} job(s) in Redis: {err}"
            ) from err

    def _enqueue_pipelined(
        self,
        requests: Sequence[EnqueueRequest],
        by_queue: Mapping[str, list[int]],
        now_ms: int,
        stored: list[int | str],
        stale: list[str],
    ) -> list[int | str]:
        with self.client.pipeline(transaction=False) as pipe:
            if stale:
                pipe.sadd(keys.queues(self.prefix), *stale)
            for queue, indexes in by_queue.items():
                self.scripts.queue_in(
                    pipe,
                    "enqueue_jobs",
                    self._enqueue_keys(queue),
                    self._enqueue_args(requests, indexes, now_ms),
                )
            replies = self.scripts.execute(pipe)
        script_replies = replies[1:] if stale else replies
        for indexes, codes in zip(by_queue.values(), script_replies, strict=True):
            for index, code in zip(indexes, parse_enqueued(codes), strict=True):
                stored[index] = code
        return stored

    def _stale_queue_names(self, queues: Iterable[str], now_ms: int) -> list[str]:
        """Queue names to SADD again with this enqueue.

        Sending the SADD with every job would cost a command per job. Sending it
        only once per process would never add a name back after Redis lost its
        data (a restart without persistence, FLUSHDB), so it is resent after
        `QUEUE_NAME_REFRESH_MS`; workers also add their queues at each heartbeat.
        """
        return sorted(
            q
            for q in queues
            if now_ms - self._queue_names_sent.get(q, -QUEUE_NAME_REFRESH_MS)
            >= QUEUE_NAME_REFRESH_MS
        )

    @staticmethod
    def _enqueue_args(
        requests: Sequence[EnqueueRequest], indexes: Iterable[int], now_ms: int
    ) -> list[Any]:
        args: list[Any] = [now_ms, len(ENQUEUE_FIELDS), *ENQUEUE_FIELDS]
        for index in indexes:
            request = requests[index]
            args.append(1 if request.at_front else 0)
            args.extend(
                enqueue_values(
                    request.job,
                    request.args_json,
                    request.kwargs_json,
                    at_front=request.at_front,
                )
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
        return self._recover(queue, now_ms, limit, "", "", ())

    def held_by(self, worker_id: str, queue: str, page: int = 1000) -> dict[str, int]:
        """Job ids of `queue` that `worker_id` holds now, with their attempt numbers.

        Reads the active set page by page (no lock): a caller that acts on the ids
        must let a script check the holder again, as `recover_worker` and
        `finish` do.
        """
        p = self.prefix
        held: dict[str, int] = {}
        offset = 0
        while True:
            # decode_responses is on (connection.py): members are str.
            ids = cast(
                list[str],
                self.client.zrange(keys.active(p, queue), offset, offset + page - 1),
            )
            if not ids:
                return held
            with self.client.pipeline(transaction=False) as pipe:
                for job_id in ids:
                    pipe.hmget(keys.job(p, queue, job_id), "worker", "attempts")
                replies = pipe.execute()
            for job_id, (holder, attempts) in zip(ids, replies, strict=True):
                if holder == worker_id:
                    held[job_id] = int(attempts or 0)
            offset += page

    def recover_worker(
        self, queue: str, worker_id: str, reason: str, now_ms: int
    ) -> Recovered:
        """Take back at once the jobs of a worker known to be dead (see
        `recover_expired`: the lost attempt counts); `reason` says how it died."""
        held = self.held_by(worker_id, queue)
        if not held:
            return Recovered(0, 0, [])
        return self._recover(queue, now_ms, len(held), worker_id, reason, held)

    def _recover(
        self,
        queue: str,
        now_ms: int,
        limit: int,
        worker_id: str,
        reason: str,
        candidates: Iterable[str],
    ) -> Recovered:
        p = self.prefix
        return self.scripts.recover_jobs(
            [
                keys.active(p, queue),
                keys.ready(p, queue),
                keys.prioritized(p, queue),
                keys.dead(p, queue),
                keys.marker(p, queue),
                keys.job_prefix(p, queue),
                keys.cancelled(p, queue),
                keys.unique_prefix(p, queue),
            ],
            [
                now_ms,
                limit,
                duration_ms(self.settings.dead_ttl),
                keys.job_channel_prefix(p, queue),
                WORKER_LOST,
                duration_ms(self.settings.result_ttl),
                worker_id,
                reason,
                *candidates,
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
            # The queues set comes back after Redis lost its data (see enqueue).
            pipe.sadd(keys.queues(self.prefix), *info.queues)
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

    # -- cron entries ---------------------------------------------------------

    def claim_cron(
        self,
        name: str,
        queue: str,
        requests: Sequence[EnqueueRequest],
        until_ms: int,
        now_ms: int,
    ) -> CronClaim:
        """Store the jobs of entry `name`'s fire times that no scheduler handled yet.

        Each request's ``job.run_at`` is its fire time. Fire times up to `until_ms`
        count as handled afterwards, stored or not (a missed-run policy skipped
        them). A new entry stores nothing; its first call starts its watermark.
        """
        p = self.prefix
        args: list[Any] = [now_ms, name, until_ms, len(ENQUEUE_FIELDS), *ENQUEUE_FIELDS]
        for request in requests:
            fire_ms = to_ms(request.job.run_at) if request.job.run_at else 0
            args.append(fire_ms)
            args.extend(
                enqueue_values(request.job, request.args_json, request.kwargs_json)
            )
        keys_ = [
            keys.cron(p, queue),
            keys.ready(p, queue),
            keys.prioritized(p, queue),
            keys.marker(p, queue),
            keys.job_prefix(p, queue),
        ]
        return self.scripts.claim_cron_slot(keys_, args)

    def cron_states(self, queue: str, names: Sequence[str]) -> list[CronState]:
        """The stored state of each entry in `names` (all of one queue)."""
        fields = [f"{n}{suffix}" for n in names for suffix in ("", ":fired", ":seen")]
        values = self._read(
            lambda: self.client.hmget(keys.cron(self.prefix, queue), fields)
        )
        return [
            CronState(*(from_ms(int(v)) if v else None for v in values[i : i + 3]))
            for i in range(0, len(values), 3)
        ]

    def touch_cron_entries(
        self, names: Mapping[str, Sequence[str]], now_ms: int
    ) -> None:
        """Record that a scheduler knows these entry names (by queue) at `now_ms`."""
        with self.client.pipeline(transaction=False) as pipe:
            for queue, queue_names in names.items():
                if queue_names:
                    seen = {f"{name}:seen": now_ms for name in queue_names}
                    pipe.hset(keys.cron(self.prefix, queue), mapping=seen)  # type: ignore[arg-type]  # redis-py wants a wider dict
            pipe.execute()

    def cron_entry_names(self, queue: str) -> set[str]:
        """Names of the entries with state in `queue` (one small hash per queue)."""
        fields = self._read(lambda: self.client.hkeys(keys.cron(self.prefix, queue)))
        return {field.split(":", 1)[0] for field in fields}

    def forget_cron_entries(
        self, queue: str, names: Sequence[str], cutoff_ms: int
    ) -> int:
        """Delete the state of `names` in `queue` where unseen since `cutoff_ms`."""
        if not names:
            return 0
        return self.scripts.forget_cron_entries(
            [keys.cron(self.prefix, queue)], [cutoff_ms, *names]
        )

    def persistence(self) -> "Persistence":
        """What the server says about keeping jobs across a restart and under memory
        pressure: ``CONFIG GET``, or ``INFO`` where a managed Redis refuses CONFIG.

        A fact neither command gives is None. Raises `RedisUnavailable`.
        """
        config: dict[str, str] = {}
        with contextlib.suppress(redis.ResponseError):
            config = self._read(
                lambda: self.client.config_get(
                    "appendonly", "appendfsync", "maxmemory-policy"
                )
            )
        if "appendonly" in config and "maxmemory-policy" in config:
            return Persistence(
                config["appendonly"] == "yes",
                config.get("appendfsync"),
                config["maxmemory-policy"],
            )
        facts: dict[str, Any] = {}
        for section in ("persistence", "memory"):
            with contextlib.suppress(redis.ResponseError):
                facts.update(self._read(lambda s=section: self.client.info(s)))
        aof = facts.get("aof_enabled")
        return Persistence(
            None if aof is None else bool(int(aof)),
            config.get("appendfsync"),
            facts.get("maxmemory_policy"),
        )

    def set_progress(self, job_id: str, queue: str, fraction: float) -> None:
        """Store a running job's progress (0 to 1)."""
        self.client.hset(keys.job(self.prefix, queue, job_id), "progress", fraction)

    def cancel_requested(self, job_id: str, queue: str) -> bool:
        """Tell whether someone asked to cancel the job (see `cancel`)."""
        flag = self.client.hget(
            keys.job(self.prefix, queue, job_id), "cancel_requested"
        )
        return flag == "1"

    # -- handles ------------------------------------------------------------

    def cancel(self, job_id: str, queue: str, now_ms: int) -> Cancelled:
        """Cancel a job: a waiting one ends `cancelled` at once; an active one gets
        its cancel flag set, for its code to honour (`JobContext.is_cancelled`).

        Raises `JobDoesNotExist` when the job is not (or no longer) in Redis, and
        `RedisUnavailable` when Redis cannot be reached.
        """
        p = self.prefix
        code = self._read(
            lambda: self.scripts.cancel_job(
                [
                    keys.job(p, queue, job_id),
                    keys.ready(p, queue),
                    keys.prioritized(p, queue),
                    keys.scheduled(p, queue),
                    keys.cancelled(p, queue),
                    keys.unique_prefix(p, queue),
                ],
                [
                    job_id,
                    now_ms,
                    duration_ms(self.settings.result_ttl),
                    keys.job_channel(p, queue, job_id),
                ],
            )
        )
        if code == -1:
            raise JobDoesNotExist(f"Job {job_id!r} does not exist in queue {queue!r}.")
        return Cancelled(code)

    def end_channel(self, job_id: str, queue: str) -> str:
        """The pub/sub channel on which the job's end is announced."""
        return keys.job_channel(self.prefix, queue, job_id)


@dataclass(frozen=True, slots=True)
class DurabilityProblem:
    """A Redis setting that can lose jobs; `code` is "aof", "eviction" or "unknown"."""

    code: str
    message: str
    hint: str


_DURABILITY_HINT = (
    "Recommended: appendonly yes, appendfsync everysec (or always), "
    "maxmemory-policy noeviction; see docs/guarantees.md."
)


@dataclass(frozen=True, slots=True)
class Persistence:
    """Redis's persistence and eviction settings; None where the server won't say."""

    aof_enabled: bool | None
    appendfsync: str | None
    maxmemory_policy: str | None

    def problems(self) -> list[DurabilityProblem]:
        """What these settings put at risk, in words for a log line or a check."""
        found: list[DurabilityProblem] = []
        if self.aof_enabled is None:
            found.append(
                DurabilityProblem(
                    "unknown",
                    "Redis did not report whether append-only persistence is on "
                    "(CONFIG and INFO refused).",
                    _DURABILITY_HINT,
                )
            )
        elif not self.aof_enabled:
            found.append(
                DurabilityProblem(
                    "aof",
                    "Redis has append-only persistence (AOF) off: a restart loses "
                    "every job written since the last RDB snapshot, if any, "
                    "including queued, scheduled and running ones.",
                    _DURABILITY_HINT,
                )
            )
        policy = self.maxmemory_policy
        if policy and policy != "noeviction":
            if policy.startswith("volatile-"):
                risk = (
                    "it evicts keys that have a TTL: finished jobs and their "
                    "results, dead jobs and worker records may vanish before their "
                    "TTL; queued, scheduled and running jobs have no TTL and stay."
                )
            else:
                risk = "it may evict any key, including queued and running jobs."
            found.append(
                DurabilityProblem(
                    "eviction",
                    f"Redis maxmemory-policy is {policy!r}: once Redis reaches "
                    f"maxmemory {risk}",
                    _DURABILITY_HINT,
                )
            )
        return found


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
    "Cancelled",
    "Claimed",
    "CronClaim",
    "CronState",
    "DurabilityProblem",
    "EnqueueRequest",
    "JobState",
    "JobStatus",
    "JobStore",
    "Outcome",
    "Persistence",
    "Placed",
    "Recovered",
    "WorkerInfo",
    "get_store",
]
