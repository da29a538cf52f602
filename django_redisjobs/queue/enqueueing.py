"""Enqueueing: storing new jobs in one round trip, and the set of queue names."""

import functools
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .. import keys
from ..job_hash import enqueue_fields, field_table
from ..scripts import parse_enqueued
from .base import StoreBase, redis_call
from .records import QUEUE_NAME_REFRESH_MS, EnqueueRequest, Placed


@functools.lru_cache(maxsize=1024)
def enqueue_jobs_keys(prefix: str, queue: str) -> tuple[str, ...]:
    """KEYS of enqueue_jobs.lua; kept per queue, as every enqueue needs them."""
    return (
        keys.ready(prefix, queue),
        keys.prioritized(prefix, queue),
        keys.scheduled(prefix, queue),
        keys.marker(prefix, queue),
        keys.job_prefix(prefix, queue),
        keys.unique_prefix(prefix, queue),
    )


def jobs_argv(
    head: list[Any], requests: Sequence[EnqueueRequest], leads: Sequence[Any]
) -> list[Any]:
    """`head`, then the jobs as enqueue_jobs.lua and claim_cron_slot.lua both take
    them: F, the F field names, then per job its lead value and its F values."""
    names, rows = field_table(
        [
            enqueue_fields(r.job, r.args_json, r.kwargs_json, at_front=r.at_front)
            for r in requests
        ]
    )
    head += [len(names), *names]
    for lead, values in zip(leads, rows, strict=True):
        head.append(lead)
        head.extend(values)
    return head


def _storing(_store: object, requests: Sequence[EnqueueRequest], _now: int) -> str:
    return f"Could not store {len(requests)} job(s) in Redis"


class EnqueueOps(StoreBase):
    """Storing new jobs: the producer's side."""

    @redis_call(_storing)
    def enqueue(self, requests: Sequence[EnqueueRequest], now_ms: int) -> list[bool]:
        """Store jobs in one round trip; True per job stored, False per known id or
        per unique key another job holds (see `enqueue_detailed`).

        Raises `RedisUnavailable` when Redis cannot be reached or refuses the
        write (out of memory, a read-only replica); then nothing of a queue's
        batch was stored.
        """
        return [placed.stored for placed in self.enqueue_detailed(requests, now_ms)]

    @redis_call(_storing)
    def enqueue_detailed(
        self, requests: Sequence[EnqueueRequest], now_ms: int
    ) -> list[Placed]:
        """Like `enqueue`, but say per request which job stands for it: itself, or
        the job that holds its unique key (then nothing was stored for it)."""
        if not requests:
            return []
        by_queue: dict[str, list[int]] = defaultdict(list)
        for index, request in enumerate(requests):
            by_queue[request.job.queue].append(index)
        stale = self._stale_queue_names(by_queue, now_ms)
        if len(by_queue) == 1 and not stale:
            # The common case: one script call, no pipeline around it.
            (queue,) = by_queue
            codes = self.scripts.enqueue_jobs(
                enqueue_jobs_keys(self.prefix, queue), _enqueue_args(requests, now_ms)
            )
        else:
            codes = self._enqueue_pipelined(requests, by_queue, now_ms, stale)
            self._queue_names_sent.update(dict.fromkeys(stale, now_ms))
        return [
            Placed(code, False)
            if isinstance(code, str)
            else Placed(r.job.id, code != 0, code == 2)
            for r, code in zip(requests, codes, strict=True)
        ]

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
                    enqueue_jobs_keys(self.prefix, queue),
                    _enqueue_args([requests[i] for i in indexes], now_ms),
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

    @redis_call("Could not add queue names in Redis")
    def add_known_queues(self, queues: Iterable[str]) -> None:
        """Add `queues` to the set of queue names (see `ReadOps.known_queues`)."""
        names = sorted(set(queues))
        if names:
            self.client.sadd(keys.queues(self.prefix), *names)


def _enqueue_args(requests: Sequence[EnqueueRequest], now_ms: int) -> list[Any]:
    """ARGV of enqueue_jobs.lua for `requests`, all of one queue."""
    leads = [1 if r.at_front else 0 for r in requests]
    return jobs_argv([now_ms], requests, leads)
