"""Job control: cancelling a job, and what a running job reads and writes about
itself (its cancel flag, its progress, the channel its end is announced on)."""

from .. import keys
from ..exceptions import JobDoesNotExist
from ..job import duration_ms
from .base import StoreBase
from .records import Cancelled


def cancel_job_keys(prefix: str, queue: str, job_id: str) -> tuple[str, ...]:
    """KEYS of cancel_job.lua."""
    return (
        keys.job(prefix, queue, job_id),
        keys.ready(prefix, queue),
        keys.prioritized(prefix, queue),
        keys.scheduled(prefix, queue),
        keys.cancelled(prefix, queue),
        keys.unique_prefix(prefix, queue),
    )


class ControlOps(StoreBase):
    """Acting on one job by id."""

    def cancel(self, job_id: str, queue: str, now_ms: int) -> Cancelled:
        """Cancel a job: a waiting one ends `cancelled` at once; an active one gets
        its cancel flag set, for its code to honour (`JobContext.is_cancelled`).

        Raises `JobDoesNotExist` when the job is not (or no longer) in Redis, and
        `RedisUnavailable` when Redis cannot be reached.
        """
        p = self.prefix
        code = self._read(
            lambda: self.scripts.cancel_job(
                cancel_job_keys(p, queue, job_id),
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

    def cancel_requested(self, job_id: str, queue: str) -> bool:
        """Tell whether someone asked to cancel the job (see `cancel`)."""
        flag = self.client.hget(
            keys.job(self.prefix, queue, job_id), "cancel_requested"
        )
        return flag == "1"

    def set_progress(self, job_id: str, queue: str, fraction: float) -> None:
        """Store a running job's progress (0 to 1)."""
        self.client.hset(keys.job(self.prefix, queue, job_id), "progress", fraction)

    def end_channel(self, job_id: str, queue: str) -> str:
        """The pub/sub channel on which the job's end is announced."""
        return keys.job_channel(self.prefix, queue, job_id)
