"""Recovery and promotion: due jobs made ready, jobs of lost workers taken back,
and ids of expired jobs trimmed from the finished listings."""

from collections.abc import Iterable

from .. import keys
from ..job import duration_ms
from ..scripts import Recovered
from .base import StoreBase, redis_call
from .claims import held_jobs
from .records import WORKER_LOST


def promote_due_keys(prefix: str, queue: str) -> tuple[str, ...]:
    """KEYS of promote_due.lua."""
    return (
        keys.scheduled(prefix, queue),
        keys.ready(prefix, queue),
        keys.prioritized(prefix, queue),
        keys.marker(prefix, queue),
        keys.job_prefix(prefix, queue),
        keys.retrying(prefix, queue),
    )


def recover_jobs_keys(prefix: str, queue: str) -> tuple[str, ...]:
    """KEYS of recover_jobs.lua."""
    return (
        keys.active(prefix, queue),
        keys.ready(prefix, queue),
        keys.prioritized(prefix, queue),
        keys.dead(prefix, queue),
        keys.marker(prefix, queue),
        keys.job_prefix(prefix, queue),
        keys.cancelled(prefix, queue),
        keys.unique_prefix(prefix, queue),
    )


class RecoveryOps(StoreBase):
    """The scheduler's and the supervisor's transitions: promote, recover, trim."""

    @redis_call("Could not promote due jobs in Redis")
    def promote_due(self, queue: str, now_ms: int, limit: int) -> tuple[int, int]:
        """Make due scheduled jobs ready; (moved, next due ms or -1)."""
        return self.scripts.promote_due(
            promote_due_keys(self.prefix, queue), [now_ms, limit]
        )

    @redis_call("Could not recover jobs in Redis")
    def recover_expired(self, queue: str, now_ms: int, limit: int) -> Recovered:
        """Requeue (or bury) jobs whose lease ran out: their worker is gone."""
        return self._recover(queue, now_ms, limit, "", "", ())

    @redis_call("Could not recover jobs in Redis")
    def recover_worker(
        self, queue: str, worker_id: str, reason: str, now_ms: int
    ) -> Recovered:
        """Take back at once the jobs of a worker known to be dead (see
        `recover_expired`: the lost attempt counts); `reason` says how it died."""
        held = held_jobs(self.client, self.prefix, worker_id, queue, 1000)
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
        return self.scripts.recover_jobs(
            recover_jobs_keys(self.prefix, queue),
            [
                now_ms,
                limit,
                duration_ms(self.settings.dead_ttl),
                keys.job_channel_prefix(self.prefix, queue),
                WORKER_LOST,
                duration_ms(self.settings.result_ttl),
                worker_id,
                reason,
                *candidates,
            ],
        )

    @redis_call("Could not trim finished jobs in Redis")
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
