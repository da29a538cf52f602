"""Claims and outcomes: leasing ready jobs to a worker, keeping the leases, and
recording how each attempt ended."""

import functools
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any, cast

import redis

from .. import keys
from ..job import DEFAULT_PRIORITY_BOUND
from ..scripts import Claimed, parse_claimed, parse_codes
from .base import StoreBase, redis_call
from .records import Outcome


@functools.lru_cache(maxsize=1024)
def claim_jobs_keys(prefix: str, queue: str) -> tuple[str, ...]:
    """KEYS of claim_jobs.lua; kept per queue, as every claim needs them."""
    return (
        keys.ready(prefix, queue),
        keys.prioritized(prefix, queue),
        keys.active(prefix, queue),
        keys.marker(prefix, queue),
        keys.job_prefix(prefix, queue),
    )


@functools.lru_cache(maxsize=1024)
def finish_jobs_keys(prefix: str, queue: str) -> tuple[str, ...]:
    """KEYS of finish_jobs.lua; kept per queue, as every outcome needs them."""
    return (
        keys.active(prefix, queue),
        keys.scheduled(prefix, queue),
        keys.succeeded(prefix, queue),
        keys.dead(prefix, queue),
        keys.cancelled(prefix, queue),
        keys.ready(prefix, queue),
        keys.prioritized(prefix, queue),
        keys.marker(prefix, queue),
        keys.job_prefix(prefix, queue),
        keys.unique_prefix(prefix, queue),
    )


class ClaimOps(StoreBase):
    """A worker's transitions of the jobs it takes: claim, renew, finish."""

    @redis_call("Could not claim jobs in Redis")
    def claim(
        self, queue: str, worker_id: str, limit: int, now_ms: int, lease_ms: int
    ) -> list[Claimed]:
        """Lease up to `limit` ready jobs of `queue` to `worker_id`."""
        return self.scripts.claim_jobs(
            claim_jobs_keys(self.prefix, queue),
            [now_ms, now_ms + lease_ms, worker_id, limit, DEFAULT_PRIORITY_BOUND],
        )

    @redis_call("Could not claim jobs in Redis")
    def wait_then_claim(
        self,
        queues: Sequence[str],
        timeout_s: float,
        worker_id: str,
        limit: int,
        now_ms: int,
        lease_ms: int,
    ) -> list[Claimed]:
        """Block until one of `queues` may have ready jobs (or `timeout_s` passes),
        then claim from the first of them in the same round trip.

        Redis runs a client's pipelined commands in order, so the claim runs the
        moment the wait returns: an idle worker saves the round trip it would
        otherwise make after waking. `now_ms` is read before the wait; keep
        `timeout_s` well below the lease.
        """
        markers = [keys.marker(self.prefix, queue) for queue in queues]
        _, reply = self.scripts.run_after(
            ("BZPOPMIN", *markers, timeout_s),
            "claim_jobs",
            claim_jobs_keys(self.prefix, queues[0]),
            [
                now_ms,
                now_ms + lease_ms,
                worker_id,
                limit,
                DEFAULT_PRIORITY_BOUND,
                1,  # now_ms predates the wait
            ],
        )
        return parse_claimed(reply)

    @redis_call("Could not record outcomes in Redis")
    def finish(
        self, outcomes: Sequence[Outcome], worker_id: str, now_ms: int
    ) -> list[int]:
        """Record attempt outcomes in one round trip; per outcome the script's code."""
        by_queue: dict[str, list[int]] = defaultdict(list)
        for index, outcome in enumerate(outcomes):
            by_queue[outcome.queue].append(index)
        calls = [
            (
                queue,
                self._finish_args(
                    queue, [outcomes[i] for i in indexes], worker_id, now_ms
                ),
            )
            for queue, indexes in by_queue.items()
        ]
        if len(calls) == 1:
            # The common case: one script call, no pipeline around it.
            ((queue, args),) = calls
            return self.scripts.finish_jobs(finish_jobs_keys(self.prefix, queue), args)
        with self.client.pipeline(transaction=False) as pipe:
            for queue, args in calls:
                self.scripts.queue_in(
                    pipe, "finish_jobs", finish_jobs_keys(self.prefix, queue), args
                )
            replies = self.scripts.execute(pipe)
        codes = [0] * len(outcomes)
        for indexes, reply in zip(by_queue.values(), replies, strict=True):
            for index, code in zip(indexes, parse_codes(reply), strict=True):
                codes[index] = code
        return codes

    def _finish_args(
        self, queue: str, outcomes: Sequence[Outcome], worker_id: str, now_ms: int
    ) -> list[Any]:
        """ARGV of finish_jobs.lua for `outcomes`, all of `queue`."""
        args: list[Any] = [
            now_ms,
            worker_id,
            keys.job_channel_prefix(self.prefix, queue),
        ]
        for outcome in outcomes:
            args.extend(outcome.script_args())
        return args

    @redis_call("Could not renew leases in Redis")
    def renew_leases(self, held: Mapping[str, Sequence[str]], deadline_ms: int) -> None:
        """Push the lease deadline of held jobs; XX leaves recovered ids alone."""
        with self.client.pipeline(transaction=False) as pipe:
            for queue, job_ids in held.items():
                if job_ids:
                    mapping = dict.fromkeys(job_ids, deadline_ms)
                    pipe.zadd(keys.active(self.prefix, queue), mapping, xx=True)
            pipe.execute()

    @redis_call("Could not read from Redis")
    def held_by(self, worker_id: str, queue: str, page: int = 1000) -> dict[str, int]:
        """Job ids of `queue` that `worker_id` holds now, with their attempt numbers.

        Reads the active set page by page (no lock): a caller that acts on the ids
        must let a script check the holder again, as `recover_worker` and
        `finish` do.
        """
        return held_jobs(self.client, self.prefix, worker_id, queue, page)


def held_jobs(
    client: redis.Redis, prefix: str, worker_id: str, queue: str, page: int
) -> dict[str, int]:
    """`JobStore.held_by`, for the parts of the store that recover jobs too."""
    held: dict[str, int] = {}
    offset = 0
    while True:
        # decode_responses is on (connection.py): members are str.
        ids = cast(
            list[str],
            client.zrange(keys.active(prefix, queue), offset, offset + page - 1),
        )
        if not ids:
            return held
        with client.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hmget(keys.job(prefix, queue, job_id), "worker", "attempts")
            replies = pipe.execute()
        for job_id, (holder, attempts) in zip(ids, replies, strict=True):
            if holder == worker_id:
                held[job_id] = int(attempts or 0)
        offset += page
