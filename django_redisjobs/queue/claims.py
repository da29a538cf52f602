"""Claims and outcomes: leasing ready jobs to a worker, keeping the leases, and
recording how each attempt ended."""

import functools
import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any, cast

import redis

from .. import keys
from ..exceptions import InvalidJob
from ..job import DEFAULT_PRIORITY_BOUND, Job
from ..job_hash import from_fields
from ..scripts import Claimed, parse_claimed, parse_codes
from .base import StoreBase, redis_call
from .records import Damaged, Outcome

logger = logging.getLogger(__name__)


@functools.lru_cache(maxsize=1024)
def claim_jobs_keys(prefix: str, queue: str) -> tuple[str, ...]:
    """KEYS of claim_jobs.lua; kept per queue, as every claim needs them."""
    return (
        keys.ready(prefix, queue),
        keys.prioritized(prefix, queue),
        keys.active(prefix, queue),
        keys.marker(prefix, queue),
        keys.job_prefix(prefix, queue),
        keys.paused(prefix, queue),
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
        keys.stats_prefix(prefix, queue),
        keys.retrying(prefix, queue),
    )


class ClaimOps(StoreBase):
    """A worker's transitions of the jobs it takes: claim, renew, finish."""

    @redis_call("Could not claim jobs in Redis")
    def claim(
        self, queue: str, worker_id: str, limit: int, now_ms: int, lease_ms: int
    ) -> list[Job | Damaged]:
        """Lease up to `limit` ready jobs of `queue` to `worker_id`, in claim order.

        Each comes back as the `Job` to run, or as `Damaged` when its hash is gone
        or holds no valid job (see `claimed_jobs`); a damaged hash never raises.
        """
        claimed = self.scripts.claim_jobs(
            claim_jobs_keys(self.prefix, queue),
            [now_ms, now_ms + lease_ms, worker_id, limit, DEFAULT_PRIORITY_BOUND],
        )
        return claimed_jobs(claimed, queue)

    @redis_call("Could not claim jobs in Redis")
    def wait_then_claim(
        self,
        queues: Sequence[str],
        timeout_s: float,
        worker_id: str,
        limit: int,
        now_ms: int,
        lease_ms: int,
    ) -> list[Job | Damaged]:
        """Block until one of `queues` may have ready jobs (or `timeout_s` passes),
        then claim from the first of them in the same round trip (as `claim`).

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
        return claimed_jobs(parse_claimed(reply), queues[0])

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


def claimed_jobs(claimed: Sequence[Claimed], queue: str) -> list[Job | Damaged]:
    """The claimed ids of `queue` as Jobs; `Damaged` for an id whose hash is gone
    or cannot be run, which includes a hash naming another id or queue than the
    one it was claimed as (its outcome would be recorded under the wrong key)."""
    jobs: list[Job | Damaged] = []
    for item in claimed:
        if not item.fields:
            jobs.append(Damaged(_readable_part(item, queue), None))
            continue
        if "claim_fault" in item.fields:
            jobs.append(Damaged(_readable_part(item, queue), _fault(item)))
            continue
        try:
            job = from_fields(item.fields)
        except InvalidJob as err:
            jobs.append(Damaged(_readable_part(item, queue), err))
            continue
        except Exception as err:
            # from_fields turns every bad field into InvalidJob; whatever else
            # it raises is a bug, and must not stop the claim or strand the job.
            logger.exception("could not read claimed job id=%s", item.job_id)
            reason = InvalidJob(f"Job {item.job_id!r} could not be read: {err!r}")
            jobs.append(Damaged(_readable_part(item, queue), reason))
            continue
        if job.id == item.job_id and job.queue == queue:
            jobs.append(job)
        else:
            jobs.append(
                Damaged(
                    _readable_part(item, queue), _misplaced(job, item.job_id, queue)
                )
            )
    return jobs


def _fault(item: Claimed) -> InvalidJob:
    """The fault claim_jobs.lua found in a claimed hash: what is wrong, and the
    field's name (after the first colon, as names may hold any character)."""
    problem, _, name = item.fields["claim_fault"].partition(":")
    return InvalidJob(
        f"Job {item.job_id!r} has a corrupt field {name!r} in Redis: {problem}."
    )


def _misplaced(job: Job, job_id: str, queue: str) -> InvalidJob:
    """Why a valid-looking hash cannot run as the job claimed as `job_id`."""
    if job.id != job_id:
        return InvalidJob(
            f"Job {job_id!r} has a corrupt field 'id' in Redis: it holds {job.id!r}."
        )
    return InvalidJob(
        f"Job {job_id!r} has a corrupt field 'queue' in Redis: it holds "
        f"{job.queue!r}, but the job was claimed from queue {queue!r}."
    )


def _readable_part(item: Claimed, queue: str) -> Job:
    """What can be read of a claimed hash that cannot be run."""
    try:
        attempts = int(item.fields.get("attempts", "0"))
    except ValueError:
        attempts = 0
    return Job(
        id=item.job_id,
        func=item.fields.get("func") or "?",
        queue=queue,
        attempts=attempts,
        max_attempts=1,
    )
