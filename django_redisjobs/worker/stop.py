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
from collections.abc import Callable, Sequence
from types import FrameType

from ..conf import Settings
from ..job import Job, JobStatus, duration_ms
from ..policy import end_ttl
from ..queue import Outcome

logger = logging.getLogger(__name__)


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
