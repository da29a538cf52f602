"""The worker: claims jobs in batches, runs them, records outcomes, keeps leases.

Threads: the caller's thread claims (an idle executor thread does the blocking wait
when there is one); an `ExecutorPool` (pool.py) runs jobs; an `OutcomeRecorder`
(recorder.py) writes outcomes in batches; a `Maintenance` thread (maintenance.py)
sends heartbeats, renews the leases of held jobs, enforces timeouts and runs the
scheduler. A Redis outage makes each of them log, back off and try again: claimed
jobs stay leased to this worker and finished outcomes wait in memory until Redis
answers.
"""

import functools
import logging
import os
import random
import signal
import socket
import threading
import time
from collections.abc import Callable
from types import FrameType

from .backoff import Backoff
from .claiming import Claimer, Handover, weighted_order
from .conf import Settings, get_settings
from .exceptions import RedisUnavailable, UnknownBackgroundFunction
from .execution import AttemptResult, failed_before_running, log_attempt
from .job import Job, duration_ms, now_epoch_ms
from .maintenance import Heartbeat, Maintenance, MaintenanceEvents
from .pool import ExecutorPool
from .queue import (
    Damaged,
    JobState,
    JobStore,
    Outcome,
    WorkerInfo,
    get_store,
)
from .recorder import OutcomeRecorder
from .registry import FunctionSpec, Registry, registry
from .scheduler import Scheduler, SchedulerConfig
from .worker_types import WorkerConfig, WorkerStats, default_worker_id

# WorkerConfig, WorkerStats, default_worker_id and weighted_order live in their
# own modules; callers keep importing them from here.
__all__ = [
    "Worker",
    "WorkerConfig",
    "WorkerStats",
    "default_worker_id",
    "install_signal_handlers",
    "weighted_order",
]

logger = logging.getLogger(__name__)


class Worker:
    """Runs jobs from `config.queues` until stopped (or drained, in burst mode)."""

    def __init__(
        self,
        config: WorkerConfig,
        *,
        store: JobStore | None = None,
        functions: Registry = registry,
        clock: Callable[[], int] = now_epoch_ms,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self._rng = rng or random.Random()  # noqa: S311 - orders queues, no secret
        self.settings: Settings = get_settings()
        self.store = store or get_store()
        self.functions = functions
        self.clock = clock
        self.worker_id = config.name or default_worker_id()
        self.stats = WorkerStats()
        self.info = WorkerInfo(
            self.worker_id,
            socket.gethostname(),
            os.getpid(),
            config.queues,
            config.concurrency,
            clock(),
        )
        self._lease_ms = duration_ms(self.settings.lease)
        self._claimer = Claimer(
            config, self.store, self.worker_id, clock, self._lease_ms, self._rng
        )
        self._stopping = threading.Event()  # no more claims
        self._halt = threading.Event()  # maintenance and backoff waits end
        self._wake = threading.Event()  # wakes the maintenance thread early
        # Ends the claim loop's backoff early: at stop, and once the heartbeat or
        # the recorder reached Redis again (they retry more often).
        self._claim_retry = threading.Event()
        self._pool = ExecutorPool(
            config.concurrency,
            self.settings,
            self.store,
            self._done,
            self._wake,
            self._claimer.slots.timed,
        )
        self.scheduler = (
            Scheduler(
                self.store, config.queues, SchedulerConfig.for_lease(self._lease_ms)
            )
            if config.scheduler
            else None
        )
        self._build_helpers()

    def _build_helpers(self) -> None:
        """The recorder and the maintenance thread (started by `run()`)."""
        # Live holders must renew within a lease of Redis coming back, before
        # another scheduler's recovery hold ends (scheduler.py): retry often enough.
        retry_cap_s = min(5.0, self.settings.lease.total_seconds() / 3)
        self._recorder = OutcomeRecorder(
            self.store,
            self.worker_id,
            self.clock,
            self._halt,
            self._claim_retry,
            retry_cap_s,
        )
        self._beat = Heartbeat(
            self.store,
            self.info,
            self._lease_ms,
            self.clock,
            self._recorder.held_by_queue,
            lambda: dict(self.stats.by_status),
        )
        self._maintainer = Maintenance(
            self._beat,
            self._pool,
            lambda: self.scheduler,
            Backoff("heartbeat", cap_s=retry_cap_s, reached=self._claim_retry),
            MaintenanceEvents(self._stopping, self._halt, self._wake),
        )

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def request_stop(self) -> None:
        """Stop claiming; `run()` returns once running jobs end or the grace passes."""
        if not self._stopping.is_set():
            logger.info("worker stopping id=%s", self.worker_id)
        self._stopping.set()
        self._claim_retry.set()
        self._recorder.wake_waiters()

    def run(self) -> WorkerStats:
        """Work until stopped; returns the outcome counts."""
        logger.info(
            "worker started id=%s queues=%s concurrency=%d",
            self.worker_id,
            ",".join(self.config.queues),
            self.config.concurrency,
        )
        self._register()
        self._pool.start()
        self._recorder.start()
        self._maintainer.start()
        try:
            self._claim_loop()
        finally:
            self._shutdown()
        logger.info(
            "worker stopped id=%s processed=%d",
            self.worker_id,
            sum(self.stats.by_status.values()),
        )
        return self.stats

    # -- claiming -----------------------------------------------------------

    def _register(self) -> None:
        backoff = Backoff("registration")
        while not self._stopping.is_set():
            try:
                self._heartbeat()  # also adds the worker's queue names
                self._warn_if_not_durable()
                return
            except RedisUnavailable as err:
                backoff.wait(self._stopping, err)

    def _warn_if_not_durable(self) -> None:
        try:
            persistence = self.store.persistence()
        except RedisUnavailable as err:
            logger.warning("could not read redis persistence settings: %s", err)
            return
        for problem in persistence.problems():
            logger.warning("%s %s", problem.message, problem.hint)

    def _claim_loop(self) -> None:
        backoff = Backoff("claim")
        drained = False  # the last claim emptied the only queue
        while not self._stopping.is_set() and not self._reached_max_jobs():
            slots = self._claimer.take_slots(self.stats.claimed)
            if not slots:
                continue
            if self._stopping.is_set():
                self._claimer.give_back(slots)
                return
            try:
                # After a claim that emptied the queue, a plain claim would find
                # nothing: wait at once (the marker is set again by any write).
                claimed = [] if drained else self._claim(slots)
                count = len(claimed)
                if not claimed and not self.config.burst:
                    count, claimed = self._wait_and_claim(slots)
                    drained = count < slots and len(self.config.queues) == 1
                idle = not count and self.config.burst and self._idle()
            except RedisUnavailable as err:
                self._claimer.give_back(slots)
                self._claim_retry.clear()
                if self._stopping.is_set():  # a stop that came in between
                    self._claim_retry.set()
                backoff.wait(self._claim_retry, err)
                continue
            backoff.reset()
            self._claimer.give_back(slots - count)
            for queue_name, item in claimed:
                self._dispatch(queue_name, item)
            if idle:
                return

    def _reached_max_jobs(self) -> bool:
        return (
            self.config.max_jobs is not None
            and self.stats.claimed >= self.config.max_jobs
        )

    def _claim(
        self, limit: int, after_wait: bool = False
    ) -> list[tuple[str, Job | Damaged]]:
        if after_wait:
            wait_s = self.config.idle_wait.total_seconds()
            claimed = self._claimer.wait_then_claim(limit, wait_s)
        else:
            claimed = self._claimer.claim(limit)
        self._recorder.hold(claimed)
        self.stats.claimed += len(claimed)
        return claimed

    def _wait_and_claim(
        self, slots: int
    ) -> tuple[int, list[tuple[str, Job | Damaged]]]:
        """Wait for jobs and claim them; how many, and those left to dispatch.

        An executor thread that is waiting for work does the wait when there is
        one, and runs the first job it claims itself: on the way from an idle
        queue to a running job, no thread hands the job to another.
        """
        handover = Handover()
        task = functools.partial(self._claim_for_thread, slots, handover)
        if self._pool.run_here(task) and not handover.withdrawn(0.05):
            return handover.result()
        claimed = self._claim(slots, after_wait=True)
        return len(claimed), claimed

    def _claim_for_thread(
        self, slots: int, handover: Handover
    ) -> tuple[FunctionSpec, Job] | None:
        """On an executor thread: wait and claim, hand the rest back to the claim
        loop, and return the first job for this thread (see `_wait_and_claim`)."""
        if not handover.start():
            return None
        try:
            claimed = self._claim(slots, after_wait=True)
        except Exception as err:  # the claim loop raises it and backs off
            handover.finish(0, [], err)
            return None
        first = self._prepare(*claimed[0]) if claimed else None
        handover.finish(len(claimed), claimed[1:])
        if first is not None and first[0].is_async:
            self._pool.submit(*first)
            return None
        return first

    def _idle(self) -> bool:
        """True when a burst worker has nothing left to do."""
        # Wait until every outcome is in Redis: a retry is work still to do.
        self._recorder.wait_until_settled(self._stopping)
        now_ms = self.clock()
        if self.scheduler is not None:
            self.scheduler.tick(now_ms)
        if any(self.store.counts(q)[JobState.QUEUED] for q in self.config.queues):
            return False
        due_ms = self.scheduler.next_due_ms if self.scheduler is not None else -1
        if due_ms != -1 and due_ms - now_ms <= duration_ms(self.config.idle_wait):
            # A retry or delayed job falls due within the idle wait: drain it too.
            self._halt.wait(max(due_ms - now_ms, 0) / 1000)
            return False
        return True

    def _dispatch(self, queue_name: str, item: Job | Damaged) -> None:
        prepared = self._prepare(queue_name, item)
        if prepared is not None:
            self._pool.submit(*prepared)

    def _prepare(
        self, queue_name: str, item: Job | Damaged
    ) -> tuple[FunctionSpec, Job] | None:
        """The function and job to run for a claimed item; None when there is
        none (no hash, corrupt fields, unknown function), recorded here."""
        if isinstance(item, Damaged):
            if item.reason is None:
                logger.warning(
                    "dropped a job id with no hash job id=%s queue=%s",
                    item.job.id,
                    queue_name,
                )
                self._recorder.forget(item.job.id)
                self._finished_one()
            else:
                self._done(failed_before_running(item.job, item.reason))
            return None
        try:
            spec = self.functions.get(item.func)
        except UnknownBackgroundFunction as err:
            self._done(failed_before_running(item, err))
            return None
        return spec, item

    # -- recording ----------------------------------------------------------

    def _done(self, result: AttemptResult) -> None:
        """Called by the pool as each attempt ends (any thread)."""
        self._recorder.record(result.outcome(self.settings, self.clock()))
        log_attempt(logger, result)
        self.stats.count(result.status.value)
        self._finished_one()

    def _finished_one(self) -> None:
        self._claimer.give_back()
        self._recorder.ended()

    def _requeue(self, job: Job) -> None:
        # The TTL applies if finish_jobs.lua ends the job (its cancel was asked).
        ttl_ms = duration_ms(job.result_ttl or self.settings.result_ttl)
        self._recorder.record(
            Outcome(job.id, job.queue, job.attempts, "requeued", ttl_ms=ttl_ms)
        )
        self.stats.count("requeued")
        logger.info(
            "job requeued at stop id=%s func=%s queue=%s", job.id, job.func, job.queue
        )

    # -- maintenance --------------------------------------------------------

    def _heartbeat(self) -> None:
        self._beat.send()

    # -- stopping -----------------------------------------------------------

    def _shutdown(self) -> None:
        if self._stopping.is_set():
            # Asked to stop: jobs not started yet go back to their queue now. Each
            # is pushed to the head, so the last claimed goes first: claim order.
            for job in reversed(self._pool.take_unstarted()):
                self._requeue(job)
                self._finished_one()
        self._stopping.set()
        deadline = time.monotonic() + self.config.grace.total_seconds()
        self._recorder.wait_until_ended(deadline)
        # Past the grace period: hand back what is still running or waiting for a
        # thread, without using an attempt; last first, as each goes to the head.
        for job in reversed(self._pool.take_unstarted()):
            self._requeue(job)
            self._finished_one()
        for job in reversed(self._pool.running_jobs()):
            self._requeue(job)
        self._pool.stop()
        self._recorder.close(max(self.config.grace.total_seconds(), 5))
        # Ends the recorder's backoff waits: outcomes still unwritten are dropped.
        self._halt.set()
        self._wake.set()
        self._maintainer.join(5)
        try:
            self.store.unregister_worker(self.worker_id)
        except RedisUnavailable as err:
            logger.warning("could not unregister worker id=%s: %s", self.worker_id, err)


def install_signal_handlers(worker: Worker) -> None:
    """SIGTERM/SIGINT stop claiming; a second SIGINT exits at once."""

    def handle(signum: int, frame: FrameType | None) -> None:
        if worker.stopping and signum == signal.SIGINT:
            logger.warning("second interrupt, exiting now; leases will expire")
            os._exit(1)
        worker.request_stop()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
