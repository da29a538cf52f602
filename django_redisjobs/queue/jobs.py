"""Enqueueing jobs, reading them (one, many, paged listings) and acting on one by id."""

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import redis

from .. import keys
from ..exceptions import JobDoesNotExist, RedisUnavailable
from ..job import (
    DEFAULT_PRIORITY_BOUND,
    Job,
    duration_ms,
    from_fields,
)
from ..scripts import parse_enqueued
from .base import StoreBase, jobs_argv
from .records import QUEUE_NAME_REFRESH_MS, Cancelled, EnqueueRequest, JobState, Placed


class JobOps(StoreBase):
    """Enqueue, read and cancel: the producer's, handle's and admin's side."""

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
        if not requests:
            return []
        by_queue: dict[str, list[int]] = defaultdict(list)
        for index, request in enumerate(requests):
            by_queue[request.job.queue].append(index)
        try:
            stale = self._stale_queue_names(by_queue, now_ms)
            if len(by_queue) == 1 and not stale:
                # The common case: one script call, no pipeline around it.
                ((queue, indexes),) = by_queue.items()
                return self.scripts.enqueue_jobs(
                    self._enqueue_keys(queue),
                    self._enqueue_args([requests[i] for i in indexes], now_ms),
                )
            stored = self._enqueue_pipelined(requests, by_queue, now_ms, stale)
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
        stale: list[str],
    ) -> list[int | str]:
        stored: list[int | str] = [0] * len(requests)
        with self.client.pipeline(transaction=False) as pipe:
            if stale:
                pipe.sadd(keys.queues(self.prefix), *stale)
            for queue, indexes in by_queue.items():
                self.scripts.queue_in(
                    pipe,
                    "enqueue_jobs",
                    self._enqueue_keys(queue),
                    self._enqueue_args([requests[i] for i in indexes], now_ms),
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
        sent = self._queue_names_sent
        return sorted(
            q
            for q in queues
            if now_ms - sent.get(q, -QUEUE_NAME_REFRESH_MS) >= QUEUE_NAME_REFRESH_MS
        )

    @staticmethod
    def _enqueue_args(requests: Sequence[EnqueueRequest], now_ms: int) -> list[Any]:
        """ARGV of enqueue_jobs.lua for `requests`, all of one queue."""
        leads = [1 if r.at_front else 0 for r in requests]
        return jobs_argv([now_ms], requests, leads)

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
