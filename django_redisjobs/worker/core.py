"""The worker: wiring of its parts, and the claim loop.

The path of one job through a worker's threads:

1. The claim loop (the caller's thread, `Worker.run`) reserves free slots in the
   ledger, claims up to that many jobs from Redis in one round trip
   (claim.py), enters them in the ledger as claimed and submits each to the
   executor pool. When the queues are empty, an idle executor thread does the
   blocking wait and runs the first job it claims itself (`claim.Handover`).
2. An executor thread (run.py) marks the job running, runs one attempt
   (`execution.run_sync`, or `run_async` on the pool's event loop) and hands the
   result to `Worker._finished`, which marks the job ended in the ledger (its
   slot is free again), encodes its outcome and queues it for the recorder.
3. The recorder thread (record.py) writes outcomes to Redis in batches and
   removes their jobs from the ledger.
4. Meanwhile the renew thread (renew.py) renews the lease of every job in the
   ledger every third of a lease, interrupts sync jobs past their timeout and
   ticks the scheduler.
5. At a stop (stop.py) the jobs still claimed, and after the grace period the
   ones still running, are handed back as "requeued" outcomes.

Every thread runs under one supervision rule (supervision.py): Redis outages are
waited out with a backoff, unexpected errors in a round are logged with their
traceback, and a thread that dies anyway stops the worker loudly.
"""

import functools
import logging
import os
import random
import socket
import time
from collections.abc import Callable

from ..conf import Settings, get_settings
from ..exceptions import (
    InvalidJob,
    RedisUnavailable,
    UnknownBackgroundFunction,
    WorkerCrashed,
)
from ..execution import AttemptResult, failed_before_running, log_attempt
from ..job import Job, duration_ms, now_epoch_ms
from ..queue import Damaged, JobState, JobStore, WorkerInfo, get_store
from ..registry import FunctionSpec, Registry, registry
from ..scheduler import Scheduler, SchedulerConfig
from .backoff import Backoff
from .claim import Claimed, Claimer, Handover
from .config import WorkerConfig, default_worker_id
from .ledger import Ledger, WorkerStats
from .record import OutcomeRecorder
from .renew import Heartbeat, Renewer
from .run import ExecutorPool
from .stop import StopParts, install_signal_handlers, shut_down
from .supervision import StopSignal, ThreadSupervisor

logger = logging.getLogger(__name__)

_UNSET = object()
# While outcomes cannot be written: how often the claim loop looks again (Redis
# answering again also wakes it), and how often it says why it claims nothing.
_PAUSE_CHECK_S = 0.5
_PAUSE_LOG_S = 30.0


class Worker:
    """Runs jobs from `config.queues` until stopped (or drained, in burst mode).

    `scheduler` replaces the one the worker builds for its queues (None: run
    none, as with ``config.scheduler=False``); `rng` draws weighted queue orders.
    """

    def __init__(
        self,
        config: WorkerConfig,
        *,
        store: JobStore | None = None,
        functions: Registry = registry,
        clock: Callable[[], int] = now_epoch_ms,
        scheduler: Scheduler | None | object = _UNSET,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.settings: Settings = get_settings()
        self.store = store or get_store()
        self.functions = functions
        self.clock = clock
        self.worker_id = config.name or default_worker_id()
        self.info = WorkerInfo(
            self.worker_id,
            socket.gethostname(),
            os.getpid(),
            config.queues,
            config.concurrency,
            clock(),
        )
        lease_ms = duration_ms(self.settings.lease)
        self.ledger = Ledger()
        self.stop_signal = StopSignal()
        self._threads = ThreadSupervisor(self.worker_id, self.stop_signal)
        self._claimer = Claimer(
            config, self.store, self.ledger, self.worker_id, clock, lease_ms, rng
        )
        self._pool = ExecutorPool(
            config.concurrency,
            self.settings,
            self.store,
            self.ledger,
            self._finished,
            self.stop_signal.poke,
            self._claimer.prefetch,
        )
        if scheduler is _UNSET:
            scheduler = (
                Scheduler(
                    self.store, config.queues, SchedulerConfig.for_lease(lease_ms)
                )
                if config.scheduler
                else None
            )
        assert scheduler is None or isinstance(scheduler, Scheduler)  # noqa: S101
        self.scheduler = scheduler
        # Live holders must renew within a lease of Redis coming back, before
        # another scheduler's recovery hold ends (scheduler.py): retry often enough.
        retry_cap_s = min(5.0, self.settings.lease.total_seconds() / 3)
        self._recorder = OutcomeRecorder(
            self.store,
            self.ledger,
            self.worker_id,
            clock,
            self.stop_signal,
            retry_cap_s,
        )
        self._heartbeat = Heartbeat(self.store, self.info, self.ledger, lease_ms, clock)
        self._paused_logged = -_PAUSE_LOG_S
        self._renewer = Renewer(
            self._heartbeat, self._pool, scheduler, self.stop_signal, retry_cap_s
        )

    @property
    def stopping(self) -> bool:
        return self.stop_signal.stopping

    @property
    def stats(self) -> WorkerStats:
        """The worker's counts so far (a snapshot)."""
        return self.ledger.counts()

    def request_stop(self) -> None:
        """Stop claiming; `run()` returns once running jobs end or the grace passes.

        Safe in a signal handler, which runs in the main thread between any two
        bytecodes: it takes only the stop signal's reentrant lock, never the
        ledger's (a signal that arrived while the claim loop held it would wait
        for itself). Waits on the ledger look at the stop every 0.5 s.
        """
        if not self.stop_signal.stopping:
            logger.info("worker stopping id=%s", self.worker_id)
        self.stop_signal.request_stop()

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT stop claiming; a second SIGINT exits at once."""
        install_signal_handlers(self.request_stop, lambda: self.stopping)

    def run(self) -> WorkerStats:
        """Work until stopped; returns the outcome counts. Raises `WorkerCrashed`
        (after handing back its jobs) when one of its threads died."""
        logger.info(
            "worker started id=%s queues=%s concurrency=%d",
            self.worker_id,
            ",".join(self.config.queues),
            self.config.concurrency,
        )
        self._register()
        spawn = self._threads.spawn
        self._pool.start(spawn)
        self._recorder.start(spawn)
        renew_thread = spawn("redisjobs-renew", self._renewer.run)
        try:
            self._claim_loop()
        except BaseException as err:
            self._threads.note_crash("claim loop", err)
        finally:
            self._shutdown(renew_thread.join)
        stats = self.stats
        logger.info(
            "worker stopped id=%s processed=%d",
            self.worker_id,
            sum(stats.by_status.values()),
        )
        if self._threads.crashed:
            name, cause = self._threads.crashed[0]
            raise WorkerCrashed(
                f"Worker {self.worker_id!r} stopped because its thread {name!r} "
                f"died: {cause!r}."
            ) from cause
        return stats

    # -- claiming -----------------------------------------------------------

    def _register(self) -> None:
        backoff = Backoff("registration")
        while not self.stop_signal.stopping:
            try:
                self._heartbeat.send()  # also adds the worker's queue names
                self._warn_if_not_durable()
                return
            except RedisUnavailable as err:
                backoff.wait(self.stop_signal.sleep_unless_stopping, err)

    def _warn_if_not_durable(self) -> None:
        """One WARNING line when Redis may lose jobs; ``check --deploy`` explains.

        Off with ``REDISJOBS["DURABILITY_WARNING"] = False`` (a development
        server) or ``config.warn_durability`` (a supervisor's later children).
        """
        if not (self.settings.durability_warning and self.config.warn_durability):
            return
        try:
            problems = self.store.persistence().problems()
        except RedisUnavailable as err:
            logger.warning("could not read redis persistence settings: %s", err)
            return
        if problems:
            logger.warning(
                "redis may lose jobs %s; run manage.py check --deploy for why and "
                "what to set, or silence this on a development server with "
                "REDISJOBS['DURABILITY_WARNING'] = False",
                " ".join(problem.setting for problem in problems),
            )

    def _claim_loop(self) -> None:
        backoff = Backoff("claim")
        drained = False  # the last claim emptied the only queue
        while not self.stop_signal.stopping and not self._reached_max_jobs():
            if self._recorder.failing.is_set():
                self._pause_claims()
                continue
            reserved = self._claimer.reserve()
            if not reserved:
                continue
            if self.stop_signal.stopping:
                self.ledger.release(reserved)
                return
            try:
                # After a claim that emptied the queue, a plain claim would find
                # nothing: wait at once (the marker is set again by any write).
                claimed = [] if drained else self._claimer.claim(reserved)
                count = len(claimed)
                if not claimed and not self.config.burst:
                    count, claimed = self._wait_and_claim(reserved)
                    drained = count < reserved and len(self.config.queues) == 1
                idle = not count and self.config.burst and self._idle()
            except Exception as err:
                # An outage is waited out; anything else is logged with its
                # traceback and tried again the same way (see supervision.py).
                trace = not isinstance(err, RedisUnavailable)
                backoff.wait(self.stop_signal.sleep_unless_stopping, err, trace=trace)
                continue
            backoff.reset()
            for item in claimed:
                self._dispatch(item)
            if idle:
                return

    def _pause_claims(self) -> None:
        """Claim nothing while outcomes cannot be written (Redis away, full or
        read-only): jobs claimed now would run and then wait in memory too.
        Says so at WARNING at most once per `_PAUSE_LOG_S`."""
        now = time.monotonic()
        if now - self._paused_logged >= _PAUSE_LOG_S:
            self._paused_logged = now
            logger.warning(
                "claims paused, outcomes cannot be written to redis id=%s held=%d",
                self.worker_id,
                len(self.ledger.held_ids()),
            )
        self.stop_signal.sleep_unless_stopping(_PAUSE_CHECK_S)

    def _reached_max_jobs(self) -> bool:
        return (
            self.config.max_jobs is not None
            and self.ledger.claimed_total >= self.config.max_jobs
        )

    def _wait_and_claim(self, reserved: int) -> tuple[int, list[Claimed]]:
        """Wait for jobs and claim them; how many, and those left to dispatch.

        An executor thread that is waiting for work does the wait when there is
        one, and runs the first job it claims itself (`claim.Handover`).
        """
        handover = Handover()
        task = functools.partial(self._claim_for_thread, reserved, handover)
        if self._pool.run_here(task) and not handover.withdrawn():
            return handover.result()
        claimed = self._claimer.wait_then_claim(reserved, self._idle_wait_s())
        return len(claimed), claimed

    def _claim_for_thread(
        self, reserved: int, handover: Handover
    ) -> tuple[FunctionSpec, Job] | None:
        """On an executor thread: wait and claim, hand the rest back to the claim
        loop, and return the first job for this thread (see `_wait_and_claim`)."""
        if not handover.start():
            return None
        try:
            claimed = self._claimer.wait_then_claim(reserved, self._idle_wait_s())
        except BaseException as err:  # the claim loop raises it and backs off
            handover.finish(0, [], err)
            return None
        first = self._prepare(claimed[0]) if claimed else None
        handover.finish(len(claimed), claimed[1:])
        if first is not None and first[0].is_async:
            self._pool.submit(*first)
            return None
        return first

    def _idle_wait_s(self) -> float:
        return self.config.idle_wait.total_seconds()

    def _idle(self) -> bool:
        """True when a burst worker has nothing left to do."""
        # Wait until every outcome is in Redis: a retry is work still to do.
        self.ledger.wait_until_settled(lambda: self.stop_signal.stopping)
        now_ms = self.clock()
        if self.scheduler is not None:
            self.scheduler.tick(now_ms)
        # A paused queue's ready jobs are not work this worker may do.
        paused = self.store.paused_queues(self.config.queues)
        if any(
            self.store.counts(q)[JobState.QUEUED]
            for q in self.config.queues
            if q not in paused
        ):
            return False
        due_ms = self.scheduler.next_due_ms if self.scheduler is not None else -1
        if due_ms != -1 and due_ms - now_ms <= duration_ms(self.config.idle_wait):
            # A retry or delayed job falls due within the idle wait: drain it too.
            self.stop_signal.sleep_unless_stopping(max(due_ms - now_ms, 0) / 1000)
            return False
        return True

    def _dispatch(self, item: Claimed) -> None:
        prepared = self._prepare(item)
        if prepared is not None:
            self._pool.submit(*prepared)

    def _prepare(self, item: Claimed) -> tuple[FunctionSpec, Job] | None:
        """The function and job to run for a claimed item; None when there is
        none (no hash, a damaged hash, an unknown function), recorded here."""
        if isinstance(item, Damaged):
            if item.reason is None:
                logger.warning(
                    "dropped a job id with no hash job id=%s queue=%s",
                    item.job.id,
                    item.job.queue,
                )
                self.ledger.recorded([item.job.id])
            else:
                self._finished(failed_before_running(item.job, item.reason))
            return None
        try:
            return self.functions.get(item.func), item
        except (InvalidJob, UnknownBackgroundFunction) as err:
            self._finished(failed_before_running(item, err))
            return None

    # -- recording ----------------------------------------------------------

    def _finished(self, result: AttemptResult) -> None:
        """An attempt ended (any thread): free its slot, queue its outcome."""
        if not self.ledger.end(result.job.id, result.status.value):
            logger.warning(
                "attempt ended after its job was handed back, outcome dropped "
                "job id=%s queue=%s status=%s",
                result.job.id,
                result.job.queue,
                result.status.value,
            )
            return
        self._recorder.record(result.outcome(self.settings, self.clock()))
        log_attempt(logger, result)

    # -- stopping -----------------------------------------------------------

    def _shutdown(self, join_renew: Callable[[float], None]) -> None:
        shut_down(
            StopParts(
                self.worker_id,
                self.settings,
                self.store,
                self.ledger,
                self.stop_signal,
                self._recorder,
                self._pool,
            ),
            self.config.grace.total_seconds(),
            join_renew,
        )
