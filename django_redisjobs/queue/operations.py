"""Operator actions on many jobs at once: retry, cancel, delete, purge, empty,
and pausing a queue. The admin, `manage.py jobs` and `JobHandle.retry` use them.

Every action that can touch many jobs works in batches of at most `BATCH` ids
per script call, and stops after `limit` jobs, so one call stays bounded however
large the queue is; it reports how many it did, and the caller may call again.
"""

from collections.abc import Sequence
from typing import cast

from .. import keys
from ..job import duration_ms
from .base import StoreBase, redis_call
from .control import cancel_job_keys
from .records import Cancelled

#: Ids per script call in the bulk actions.
BATCH = 500
#: The most jobs one bulk call handles by default.
BULK_LIMIT = 10_000


def retry_jobs_keys(prefix: str, queue: str) -> tuple[str, ...]:
    """KEYS of retry_jobs.lua."""
    return (
        keys.ready(prefix, queue),
        keys.prioritized(prefix, queue),
        keys.scheduled(prefix, queue),
        keys.dead(prefix, queue),
        keys.cancelled(prefix, queue),
        keys.marker(prefix, queue),
        keys.job_prefix(prefix, queue),
        keys.retrying(prefix, queue),
    )


def delete_jobs_keys(prefix: str, queue: str) -> tuple[str, ...]:
    """KEYS of delete_jobs.lua."""
    return (
        keys.succeeded(prefix, queue),
        keys.dead(prefix, queue),
        keys.cancelled(prefix, queue),
        keys.job_prefix(prefix, queue),
        keys.unique_prefix(prefix, queue),
    )


def drop_ready_keys(prefix: str, queue: str) -> tuple[str, ...]:
    """KEYS of drop_ready.lua."""
    return (
        keys.ready(prefix, queue),
        keys.prioritized(prefix, queue),
        keys.marker(prefix, queue),
        keys.job_prefix(prefix, queue),
        keys.unique_prefix(prefix, queue),
    )


class OperatorOps(StoreBase):
    """What an operator does to jobs and queues by hand."""

    @redis_call("Could not retry jobs in Redis")
    def retry(self, job_ids: Sequence[str], queue: str, now_ms: int) -> list[int]:
        """Queue dead, cancelled or retrying jobs again, under the same ids, with
        a fresh attempt count and their history kept (see retry_jobs.lua).

        Per id: 1 retried, 0 not retryable in its state, -1 no such job.
        """
        codes: list[int] = []
        for start in range(0, len(job_ids), BATCH):
            codes += self.scripts.retry_jobs(
                retry_jobs_keys(self.prefix, queue),
                [now_ms, *job_ids[start : start + BATCH]],
            )
        return codes

    @redis_call("Could not retry dead jobs in Redis")
    def retry_dead(self, queue: str, now_ms: int, limit: int = BULK_LIMIT) -> int:
        """Retry the queue's dead jobs, newest first, at most `limit`; how many.

        Reads the dead set `BATCH` ids at a time; each batch leaves it (retried,
        or dropped as leftovers of expired hashes), so the next read moves on.
        """
        dead_key = keys.dead(self.prefix, queue)
        done = 0
        while done < limit:
            ids = cast(
                list[str],
                self.client.zrange(
                    dead_key, 0, min(BATCH, limit - done) - 1, desc=True
                ),
            )
            if not ids:
                break
            codes = self.scripts.retry_jobs(
                retry_jobs_keys(self.prefix, queue), [now_ms, *ids]
            )
            done += codes.count(1)
            if 0 in codes:
                # An id the script would not take (only a hand write puts a
                # job of another state there): stop rather than read it again.
                break
        return done

    @redis_call("Could not cancel jobs in Redis")
    def cancel_many(
        self, job_ids: Sequence[str], queue: str, now_ms: int
    ) -> list[Cancelled | None]:
        """Cancel each job as `cancel` does, in one round trip per `BATCH`; None
        for an id with no job."""
        ttl_ms = duration_ms(self.settings.result_ttl)
        found: list[Cancelled | None] = []
        for start in range(0, len(job_ids), BATCH):
            with self.client.pipeline(transaction=False) as pipe:
                for job_id in job_ids[start : start + BATCH]:
                    self.scripts.queue_in(
                        pipe,
                        "cancel_job",
                        cancel_job_keys(self.prefix, queue, job_id),
                        [
                            job_id,
                            now_ms,
                            ttl_ms,
                            keys.job_channel(self.prefix, queue, job_id),
                        ],
                    )
                replies = self.scripts.execute(pipe)
            found += [None if int(r) == -1 else Cancelled(int(r)) for r in replies]
        return found

    @redis_call("Could not delete jobs in Redis")
    def delete(self, job_ids: Sequence[str], queue: str) -> list[int]:
        """Delete ended jobs (succeeded, dead, cancelled) with their ids in the
        listings. Per id: 1 deleted, 0 not ended (left alone), -1 no such job."""
        codes: list[int] = []
        for start in range(0, len(job_ids), BATCH):
            codes += self.scripts.delete_jobs(
                delete_jobs_keys(self.prefix, queue), job_ids[start : start + BATCH]
            )
        return codes

    @redis_call("Could not purge dead jobs in Redis")
    def purge_dead(self, queue: str, limit: int = BULK_LIMIT) -> int:
        """Delete the queue's dead jobs, oldest first, at most `limit`; how many
        hashes were deleted."""
        dead_key = keys.dead(self.prefix, queue)
        deleted = taken = 0
        while taken < limit:
            ids = cast(
                list[str],
                self.client.zrange(dead_key, 0, min(BATCH, limit - taken) - 1),
            )
            if not ids:
                break
            codes = self.scripts.delete_jobs(delete_jobs_keys(self.prefix, queue), ids)
            taken += len(ids)
            deleted += codes.count(1)
            if 0 in codes:
                break  # a job of another state listed as dead: leave it be
        return deleted

    @redis_call("Could not empty the queue in Redis")
    def empty_ready(self, queue: str, limit: int = BULK_LIMIT) -> int:
        """Delete the queue's ready jobs from the head, at most `limit`; how many
        hashes were deleted. Scheduled, retrying and active jobs stay."""
        taken = deleted = 0
        while taken < limit:
            want = min(BATCH, limit - taken)
            got, gone = self.scripts.drop_ready(
                drop_ready_keys(self.prefix, queue), [want]
            )
            taken += got
            deleted += gone
            if got < want:
                break
        return deleted

    @redis_call("Could not pause the queue in Redis")
    def pause(self, queue: str) -> bool:
        """Stop workers from claiming jobs of `queue`; it still accepts jobs.

        Workers see it at their next claim (claim_jobs.lua reads the flag). True
        when the queue was running.
        """
        with self.client.pipeline(transaction=False) as pipe:
            pipe.sadd(keys.queues(self.prefix), queue)
            pipe.set(keys.paused(self.prefix, queue), "1", get=True)
            _, was = pipe.execute()
        return was is None

    @redis_call("Could not resume the queue in Redis")
    def resume(self, queue: str) -> bool:
        """Let workers claim from `queue` again; True when it was paused.

        Sets the queue's marker, so a worker blocked on it wakes at once: its
        wait may have taken the marker while the queue was paused.
        """
        with self.client.pipeline(transaction=False) as pipe:
            pipe.delete(keys.paused(self.prefix, queue))
            pipe.zadd(keys.marker(self.prefix, queue), {"ready": 0})
            was, _ = pipe.execute()
        return bool(was)

    @redis_call("Could not read from Redis")
    def paused_queues(self, queues: Sequence[str]) -> set[str]:
        """Which of `queues` are paused now."""
        with self.client.pipeline(transaction=False) as pipe:
            for queue in queues:
                pipe.exists(keys.paused(self.prefix, queue))
            flags = pipe.execute()
        return {q for q, flag in zip(queues, flags, strict=True) if flag}
