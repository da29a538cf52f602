"""Job control: cancelling a job, and what a running job reads and writes about
itself (its cancel flag, its progress, the channel its end and its progress are
announced on)."""

from redis.client import PubSub

from .. import keys
from ..exceptions import JobDoesNotExist
from ..job import duration_ms
from .base import StoreBase, redis_call
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
        keys.retrying(prefix, queue),
    )


class ControlOps(StoreBase):
    """Acting on one job by id."""

    @redis_call("Could not cancel the job in Redis")
    def cancel(self, job_id: str, queue: str, now_ms: int) -> Cancelled:
        """Cancel a job: a waiting one ends `cancelled` at once; an active one gets
        its cancel flag set, for its code to honour (`JobContext.is_cancelled`).

        Raises `JobDoesNotExist` when the job is not (or no longer) in Redis, and
        `RedisUnavailable` when Redis cannot be reached.
        """
        p = self.prefix
        code = self.scripts.cancel_job(
            cancel_job_keys(p, queue, job_id),
            [
                job_id,
                now_ms,
                duration_ms(self.settings.result_ttl),
                keys.job_channel(p, queue, job_id),
            ],
        )
        if code == -1:
            raise JobDoesNotExist(f"Job {job_id!r} does not exist in queue {queue!r}.")
        return Cancelled(code)

    @redis_call("Could not read from Redis")
    def cancel_requested(self, job_id: str, queue: str) -> bool:
        """Tell whether someone asked to cancel the job (see `cancel`)."""
        flag = self.client.hget(
            keys.job(self.prefix, queue, job_id), "cancel_requested"
        )
        return flag == "1"

    @redis_call("Could not store progress in Redis")
    def set_progress(
        self,
        job_id: str,
        queue: str,
        holder: tuple[str, int],
        fraction: float,
        message: str = "",
    ) -> bool:
        """Store a running job's progress (0 to 1) and message, and announce it on
        the job's channel, while `holder` (worker id, attempt) still holds its
        lease. False, with nothing written, once it does not: an expired or
        deleted hash is never made again, and an ended attempt writes nothing.
        """
        worker_id, attempt = holder
        return self.scripts.set_progress(
            (keys.job(self.prefix, queue, job_id),),
            [
                worker_id,
                attempt,
                repr(float(fraction)),
                message,
                keys.job_channel(self.prefix, queue, job_id),
            ],
        )

    def end_channel(self, job_id: str, queue: str) -> str:
        """The pub/sub channel on which the job's end is announced (no I/O)."""
        return keys.job_channel(self.prefix, queue, job_id)

    @redis_call("Could not subscribe in Redis")
    def watch_end(self, job_id: str, queue: str) -> "EndWatch":
        """Subscribe to the job's end channel; close the watch when done (it is a
        context manager). Read the job after subscribing: an end announced
        before the subscription is not heard."""
        pubsub = self.client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]  # redis-py leaves pubsub() unannotated
        try:
            pubsub.subscribe(self.end_channel(job_id, queue))
        except BaseException:
            pubsub.close()
            raise
        return EndWatch(pubsub)


class EndWatch:
    """A subscription to one job's end channel (see `JobStore.watch_end`)."""

    def __init__(self, pubsub: PubSub) -> None:
        self._pubsub = pubsub

    def __enter__(self) -> "EndWatch":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @redis_call("Could not listen to Redis")
    def wait(self, timeout_s: float) -> None:
        """Return when a message arrives on the channel or `timeout_s` passes;
        then read the job to see whether it ended."""
        self._pubsub.get_message(timeout=timeout_s)

    def close(self) -> None:
        """Unsubscribe by closing the subscription's connection (no I/O)."""
        self._pubsub.close()
