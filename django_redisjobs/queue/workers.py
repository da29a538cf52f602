"""The worker's side: claims, outcomes, leases, recovery, promotion and heartbeats."""

import contextlib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

import redis

from .. import keys
from ..exceptions import InvalidJob
from ..job import DEFAULT_PRIORITY_BOUND, Job, duration_ms, from_fields
from ..scripts import Claimed, Recovered, parse_claimed, parse_codes
from .base import StoreBase
from .records import WORKER_LOST, Damaged, Outcome, Persistence, WorkerInfo


class WorkerOps(StoreBase):
    """Transitions a worker and its scheduler drive."""

    def claim(
        self, queue: str, worker_id: str, limit: int, now_ms: int, lease_ms: int
    ) -> list[Job | Damaged]:
        """Lease up to `limit` ready jobs of `queue` to `worker_id`."""
        return _jobs(
            queue,
            self.scripts.claim_jobs(
                self._claim_keys(queue),
                [now_ms, now_ms + lease_ms, worker_id, limit, DEFAULT_PRIORITY_BOUND],
            ),
        )

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
            return self.scripts.finish_jobs(self._finish_keys(queue), args)
        with self.client.pipeline(transaction=False) as pipe:
            for queue, args in calls:
                self.scripts.queue_in(
                    pipe, "finish_jobs", self._finish_keys(queue), args
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

    def renew_leases(self, held: Mapping[str, Sequence[str]], deadline_ms: int) -> None:
        """Push the lease deadline of held jobs; XX leaves recovered ids alone."""
        with self.client.pipeline(transaction=False) as pipe:
            for queue, job_ids in held.items():
                if job_ids:
                    mapping = dict.fromkeys(job_ids, deadline_ms)
                    pipe.zadd(keys.active(self.prefix, queue), mapping, xx=True)
            pipe.execute()

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
            self._claim_keys(queues[0]),
            [
                now_ms,
                now_ms + lease_ms,
                worker_id,
                limit,
                DEFAULT_PRIORITY_BOUND,
                1,  # now_ms predates the wait
            ],
        )
        return _jobs(queues[0], parse_claimed(reply))

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

    def persistence(self) -> Persistence:
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


def _jobs(queue: str, claimed: list[Claimed]) -> list[Job | Damaged]:
    """Claimed hashes as jobs; a Damaged for each that cannot be run."""
    jobs: list[Job | Damaged] = []
    for item in claimed:
        try:
            if not item.fields:
                jobs.append(Damaged(_bare_job(item, queue), None))
                continue
            job = from_fields(item.fields)
            if job.id != item.job_id or job.queue != queue:
                raise InvalidJob(
                    f"Job {item.job_id!r} in queue {queue!r} has the id {job.id!r} "
                    f"and the queue {job.queue!r} in its fields."
                )
            jobs.append(job)
        except Exception as err:
            reason = err if isinstance(err, InvalidJob) else InvalidJob(str(err))
            jobs.append(Damaged(_bare_job(item, queue), reason))
    return jobs


def _bare_job(item: Claimed, queue: str) -> Job:
    """Enough of a job to record its failure when its hash cannot be parsed."""
    attempts = item.fields.get("attempts", "0")
    return Job(
        id=item.job_id,
        func=item.fields.get("func", "?"),
        queue=queue,
        attempts=int(attempts) if attempts.isdigit() else 0,
        max_attempts=1,
    )
