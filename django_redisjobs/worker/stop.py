"""Stopping: handing held jobs back to their queues, and the signals that ask for it.

At a stop the worker claims no more. Jobs still waiting for a thread go back to
the head of their queue at once, without using an attempt; jobs that run get the
grace period to end; what still runs after it is handed back too (its thread's
outcome, if it comes later, is dropped: Redis no longer lists the job as this
worker's). Each hand-back is an outcome like any other ("requeued"), written by
the recorder, so a job handed back while Redis is away waits in memory like the
rest.
"""

import logging
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType

from ..conf import Settings
from ..exceptions import RedisUnavailable
from ..job import Job, JobStatus, duration_ms
from ..policy import end_ttl
from ..queue import JobStore, Outcome
from .ledger import Ledger
from .record import OutcomeRecorder
from .run import ExecutorPool
from .supervision import StopSignal

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StopParts:
    """The parts of a worker its stop goes through."""

    worker_id: str
    settings: Settings
    store: JobStore
    ledger: Ledger
    signal: StopSignal
    recorder: OutcomeRecorder
    pool: ExecutorPool


def shut_down(
    parts: StopParts, grace_s: float, join_renew: Callable[[float], None]
) -> None:
    """The stop sequence, once the claim loop has returned (or died)."""
    ledger, record = parts.ledger, parts.recorder.record
    if parts.signal.stopping:
        # Asked to stop: jobs not started yet go back to their queue now.
        hand_back(ledger.hand_back_unstarted(), record, parts.settings)
    parts.signal.request_stop()
    ledger.wait_until_ended(time.monotonic() + grace_s)
    # Past the grace period: hand back what is still running or waiting for a
    # thread, without using an attempt.
    hand_back(ledger.hand_back_unstarted(), record, parts.settings)
    hand_back(ledger.hand_back_running(), record, parts.settings)
    parts.pool.stop()
    parts.recorder.close(max(grace_s, 5))
    # Ends the recorder's backoff waits: outcomes still unwritten are given up.
    parts.signal.halt()
    parts.recorder.join(5)
    join_renew(5)
    account_for_held(ledger, parts.worker_id)
    try:
        parts.store.unregister_worker(parts.worker_id)
    except RedisUnavailable as err:
        logger.warning("could not unregister worker id=%s: %s", parts.worker_id, err)


def account_for_held(ledger: Ledger, worker_id: str) -> None:
    """Name every job whose outcome did not reach Redis before the stop."""
    held = ledger.held_ids()
    if held:
        logger.error(
            "worker stopped holding %d job(s) whose outcome is not in redis; "
            "their leases run out and they run again elsewhere id=%s jobs=%s",
            len(held),
            worker_id,
            ",".join(held),
        )


def requeue_outcome(job: Job, settings: Settings) -> Outcome:
    """The outcome that puts `job` back at the head of its queue without using
    an attempt. The TTL applies if finish_jobs.lua ends the job instead (a cancel
    was asked for it)."""
    ttl_ms = duration_ms(end_ttl(JobStatus.QUEUED, job.result_ttl, settings))
    return Outcome(job.id, job.queue, job.attempts, "requeued", ttl_ms=ttl_ms)


def hand_back(
    jobs: Sequence[Job], record: Callable[[Outcome], None], settings: Settings
) -> None:
    """Record "requeued" for `jobs`, last claimed first: each goes to the head of
    its queue, so they come out again in claim order."""
    for job in reversed(jobs):
        record(requeue_outcome(job, settings))
        logger.info(
            "job requeued at stop id=%s func=%s queue=%s", job.id, job.func, job.queue
        )


def install_signal_handlers(
    stop: Callable[[], None], stopping: Callable[[], bool]
) -> None:
    """SIGTERM/SIGINT call `stop`; a second SIGINT exits at once (the leases of
    running jobs then run out and other workers recover them)."""

    def handle(signum: int, frame: FrameType | None) -> None:
        if stopping() and signum == signal.SIGINT:
            logger.warning("second interrupt, exiting now; leases will expire")
            os._exit(1)
        stop()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
