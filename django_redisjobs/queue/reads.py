"""Reads: one job, many jobs, where a job is, and paged listings per state."""

from collections.abc import Sequence
from typing import cast

from .. import keys
from ..exceptions import InvalidJob, JobDoesNotExist
from ..job import DEFAULT_PRIORITY_BOUND, Job
from ..job_hash import from_fields
from .base import StoreBase, redis_call
from .records import JobState


def _not_text(queue: str, job_ids: Sequence[str]) -> InvalidJob:
    """A read whose reply was not UTF-8: only a hand write stores such bytes,
    and the client cannot decode the reply to say which field holds them."""
    which = (
        f"Job {job_ids[0]!r}" if len(job_ids) == 1 else f"One of {len(job_ids)} jobs"
    )
    return InvalidJob(
        f"{which} in queue {queue!r} has a field that is not UTF-8 text in Redis."
    )


class ReadOps(StoreBase):
    """What handles, the admin and commands read; nothing here writes."""

    @redis_call("Could not read from Redis")
    def get(self, job_id: str, queue: str) -> Job:
        """Return the job; raise `JobDoesNotExist` (or `InvalidJob` if corrupt)."""
        # decode_responses is on (connection.py): replies are str.
        try:
            fields = cast(
                dict[str, str],
                self.client.hgetall(keys.job(self.prefix, queue, job_id)),
            )
        except UnicodeDecodeError as err:
            raise _not_text(queue, [job_id]) from err
        if not fields:
            raise JobDoesNotExist(f"Job {job_id!r} does not exist in queue {queue!r}.")
        return from_fields(fields)

    @redis_call("Could not read from Redis")
    def get_many(self, job_ids: Sequence[str], queue: str) -> list[Job | None]:
        """Return jobs in the order of `job_ids`; None where a job no longer exists."""
        with self.client.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hgetall(keys.job(self.prefix, queue, job_id))
            try:
                replies = pipe.execute()
            except UnicodeDecodeError as err:
                raise _not_text(queue, job_ids) from err
        return [from_fields(fields) if fields else None for fields in replies]

    @redis_call("Could not read from Redis")
    def locate(self, job_id: str) -> str:
        """Return the queue that holds `job_id`; raise `JobDoesNotExist` if none."""
        queues = self.known_queues()
        with self.client.pipeline(transaction=False) as pipe:
            for queue in queues:
                pipe.exists(keys.job(self.prefix, queue, job_id))
            found = pipe.execute()
        for queue, exists in zip(queues, found, strict=True):
            if exists:
                return queue
        raise JobDoesNotExist(f"Job {job_id!r} does not exist in any queue.")

    @redis_call("Could not read from Redis")
    def known_queues(self) -> list[str]:
        """Every queue that has had a job or a worker, sorted by name."""
        return sorted(cast(set[str], self.client.smembers(keys.queues(self.prefix))))

    @redis_call("Could not read from Redis")
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
            ready, prio, sched, active, ok, dead, cancelled = pipe.execute()
        return {
            JobState.QUEUED: ready + prio,
            JobState.SCHEDULED: sched,
            JobState.ACTIVE: active,
            JobState.SUCCEEDED: ok,
            JobState.DEAD: dead,
            JobState.CANCELLED: cancelled,
        }

    @redis_call("Could not read from Redis")
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
        ids = self.client.zrange(collection, offset, stop, desc=newest_first)
        return cast(list[str], ids)

    def _list_queued(self, queue: str, offset: int, limit: int) -> list[str]:
        """Ready ids in claim order (claim_jobs.lua): priorities above the default,
        then the list, then priorities below it."""
        p = self.prefix
        prio, ready = keys.prioritized(p, queue), keys.ready(p, queue)
        bound = DEFAULT_PRIORITY_BOUND
        with self.client.pipeline(transaction=False) as pipe:
            pipe.zcount(prio, "-inf", f"({bound}")
            pipe.llen(ready)
            n_high, n_list = pipe.execute()
        ids: list[str] = []
        if offset < n_high:
            ids += cast(
                list[str],
                self.client.zrange(
                    prio, "-inf", f"({bound}", byscore=True, offset=offset, num=limit
                ),
            )
        start = max(offset - n_high, 0)
        if len(ids) < limit and start < n_list:
            stop = start + limit - len(ids) - 1
            ids += cast(list[str], self.client.lrange(ready, start, stop))
        low_start = max(offset - n_high - n_list, 0)
        if len(ids) < limit:
            num = limit - len(ids)
            ids += cast(
                list[str],
                self.client.zrange(
                    prio, bound, "+inf", byscore=True, offset=low_start, num=num
                ),
            )
        return ids
