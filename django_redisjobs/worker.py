"""The worker: claims jobs in batches, runs them, records outcomes, keeps leases.

Threads: the caller's thread claims (blocking on Redis when idle); an `ExecutorPool`
runs jobs; a recorder writes outcomes in batches; a maintenance thread sends
heartbeats, renews the leases of held jobs, enforces timeouts and runs the
scheduler. A Redis outage makes each of them log, back off and try again: claimed
jobs stay leased to this worker and finished outcomes wait in memory until Redis
answers.
"""

import logging
import os
import queue
import random
import signal
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from types import FrameType

from .conf import Settings, get_settings
from .exceptions import InvalidJob, RedisUnavailable, UnknownBackgroundFunction
from .execution import AttemptResult, failed_before_running
from .job import Job, JobStatus, duration_ms, from_fields, now_epoch_ms
from .pool import ExecutorPool
from .queue import (
    REDIS_ERRORS,
    Claimed,
    JobState,
    JobStore,
    Outcome,
    WorkerInfo,
    get_store,
)
from .registry import Registry, registry
from .scheduler import Scheduler, SchedulerConfig

logger = logging.getLogger(__name__)

_OUTCOME_BATCH = 256


@dataclass(frozen=True)
class WorkerConfig:
    """How a worker runs; `runworker` builds it from its options.

    `queues` are tried in order at each claim; with `weights` (one whole number of
    1 or more per queue), the order is drawn at each claim instead, each place by
    weight among the queues left, so a queue is served first with a probability
    proportional to its weight among the queues that have jobs.
    """

    queues: tuple[str, ...]
    concurrency: int = 4
    prefetch: int = 16
    name: str | None = None
    burst: bool = False
    max_jobs: int | None = None
    scheduler: bool = True
    idle_wait: timedelta = timedelta(seconds=2)
    grace: timedelta = timedelta(seconds=30)
    weights: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.weights is not None and (
            len(self.weights) != len(self.queues) or min(self.weights, default=1) < 1
        ):
            raise ValueError(
                f"weights {self.weights!r} must give each of the queues "
                f"{self.queues!r} a whole number of 1 or more."
            )


def weighted_order(
    queues: Sequence[str], weights: Sequence[int], rand: Callable[[], float]
) -> list[str]:
    """`queues` in a random order: each place goes to one of the queues left, with a
    probability proportional to its weight. `rand` returns floats in [0, 1)."""
    left = list(zip(queues, weights, strict=True))
    order: list[str] = []
    while left:
        pick = rand() * sum(weight for _, weight in left)
        index = 0
        while index < len(left) - 1 and pick >= left[index][1]:
            pick -= left[index][1]
            index += 1
        order.append(left.pop(index)[0])
    return order


@dataclass
class WorkerStats:
    """Counts of attempt outcomes since the worker started."""

    claimed: int = 0
    succeeded: int = 0
    retried: int = 0
    dead: int = 0
    requeued: int = 0
    by_status: dict[str, int] = field(default_factory=dict)

    def count(self, status: str) -> None:
        self.by_status[status] = self.by_status.get(status, 0) + 1
        if status == JobStatus.SUCCEEDED:
            self.succeeded += 1
        elif status == JobStatus.RETRYING:
            self.retried += 1
        elif status == JobStatus.DEAD:
            self.dead += 1
        elif status == "requeued":
            self.requeued += 1


class _Backoff:
    """Capped exponential waits between tries while Redis does not answer."""

    def __init__(
        self,
        what: str,
        first_s: float = 0.1,
        cap_s: float = 5.0,
        reached: threading.Event | None = None,
    ) -> None:
        self.what, self.reached = what, reached
        self.first_s = min(first_s, cap_s)
        self.cap_s, self.next_s = cap_s, self.first_s
        self.failing_since: float | None = None

    def wait(self, stop: threading.Event, err: Exception) -> None:
        if self.failing_since is None:
            self.failing_since = time.monotonic()
        logger.warning(
            "redis unavailable during %s, retry in %.1fs: %s",
            self.what,
            self.next_s,
            err,
        )
        stop.wait(self.next_s)
        self.next_s = min(self.next_s * 2, self.cap_s)

    def reset(self) -> None:
        """Call after a success: logs the reconnection once after failures."""
        if self.failing_since is not None:
            logger.warning(
                "redis reachable again during %s after %.1fs",
                self.what,
                time.monotonic() - self.failing_since,
            )
            self.failing_since = None
            if self.reached is not None:
                self.reached.set()
        self.next_s = self.first_s


def default_worker_id() -> str:
    return f"{socket.gethostname()}.{os.getpid()}.{os.urandom(2).hex()}"


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
        self._slots = threading.BoundedSemaphore(config.concurrency + config.prefetch)
        self._in_flight = 0
        self._changed = threading.Condition()
        self._held: dict[str, str] = {}  # job id -> queue, until its outcome is stored
        self._held_lock = threading.Lock()
        self._outcomes: queue.SimpleQueue[Outcome | None] = queue.SimpleQueue()
        self._stopping = threading.Event()  # no more claims
        self._halt = threading.Event()  # maintenance and backoff waits end
        self._wake = threading.Event()  # wakes the maintenance thread early
        # Ends the claim loop's backoff early: at stop, and once the heartbeat or
        # the recorder reached Redis again (they retry more often).
        self._claim_retry = threading.Event()
        self._pool = ExecutorPool(
            config.concurrency, self.settings, self.store, self._done, self._wake
        )
        self.scheduler = (
            Scheduler(
                self.store, config.queues, SchedulerConfig.for_lease(self._lease_ms)
            )
            if config.scheduler
            else None
        )
        # Live holders must renew within a lease of Redis coming back, before
        # another scheduler's recovery hold ends (scheduler.py): retry often enough.
        self._retry_cap_s = min(5.0, self.settings.lease.total_seconds() / 3)
        self._recorder = threading.Thread(
            target=self._record_loop, name="redisjobs-recorder", daemon=True
        )
        self._maintainer = threading.Thread(
            target=self._maintain_loop, name="redisjobs-maintenance", daemon=True
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
        with self._changed:
            self._changed.notify_all()

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
        backoff = _Backoff("registration")
        while not self._stopping.is_set():
            try:
                self.store.add_known_queues(self.config.queues)
                self._heartbeat()
                self._warn_if_not_durable()
                return
            except REDIS_ERRORS as err:
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
        backoff = _Backoff("claim")
        while not self._stopping.is_set() and not self._reached_max_jobs():
            slots = self._take_slots()
            if not slots:
                continue
            if self._stopping.is_set():
                self._give_back_slots(slots)
                return
            try:
                claimed = self._claim(slots)
                idle = not claimed and self._idle()
            except (*REDIS_ERRORS, RedisUnavailable) as err:
                self._give_back_slots(slots)
                self._claim_retry.clear()
                if self._stopping.is_set():  # a stop that came in between
                    self._claim_retry.set()
                backoff.wait(self._claim_retry, err)
                continue
            backoff.reset()
            self._give_back_slots(slots - len(claimed))
            for queue_name, item in claimed:
                self._dispatch(queue_name, item)
            if idle:
                return

    def _reached_max_jobs(self) -> bool:
        return (
            self.config.max_jobs is not None
            and self.stats.claimed >= self.config.max_jobs
        )

    def _take_slots(self) -> int:
        if not self._slots.acquire(timeout=0.5):
            return 0
        taken = 1
        limit = self.config.concurrency + self.config.prefetch
        if self.config.max_jobs is not None:
            limit = min(limit, self.config.max_jobs - self.stats.claimed)
        while taken < limit and self._slots.acquire(blocking=False):
            taken += 1
        return taken

    def _give_back_slots(self, count: int) -> None:
        for _ in range(count):
            self._slots.release()

    def _claim(self, limit: int) -> list[tuple[str, Claimed]]:
        claimed: list[tuple[str, Claimed]] = []
        now_ms = self.clock()
        queues: Sequence[str] = self.config.queues
        if self.config.weights is not None:
            queues = weighted_order(queues, self.config.weights, self._rng.random)
        for queue_name in queues:
            wanted = limit - len(claimed)
            if wanted <= 0:
                break
            try:
                items = self.store.claim(
                    queue_name, self.worker_id, wanted, now_ms, self._lease_ms
                )
            except REDIS_ERRORS:
                if not claimed:
                    raise
                # Jobs claimed from earlier queues are leased to this worker: run
                # them; the next claim meets the error again and backs off.
                break
            claimed.extend((queue_name, item) for item in items)
        with self._held_lock:
            for queue_name, item in claimed:
                self._held[item.job_id] = queue_name
        with self._changed:
            self._in_flight += len(claimed)
        self.stats.claimed += len(claimed)
        return claimed

    def _idle(self) -> bool:
        """Wait for work; True when a burst worker has nothing left to do."""
        if not self.config.burst:
            self.store.wait_for_ready(
                self.config.queues, self.config.idle_wait.total_seconds()
            )
            return False
        with self._changed:
            # Wait until every outcome is in Redis: a retry is work still to do.
            while (self._in_flight or self._held) and not self._stopping.is_set():
                self._changed.wait(0.5)
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

    def _dispatch(self, queue_name: str, item: Claimed) -> None:
        if not item.fields:
            logger.warning(
                "dropped a job id with no hash job id=%s queue=%s",
                item.job_id,
                queue_name,
            )
            self._forget(item.job_id)
            self._finished_one()
            return
        try:
            job = from_fields(item.fields)
            spec = self.functions.get(job.func)
        except (InvalidJob, UnknownBackgroundFunction) as err:
            self._done(failed_before_running(_bare_job(item, queue_name), err))
            return
        self._pool.submit(spec, job)

    # -- recording ----------------------------------------------------------

    def _done(self, result: AttemptResult) -> None:
        """Called by the pool as each attempt ends (any thread)."""
        self._outcomes.put(result.outcome(self.settings, self.clock()))
        self._log(result)
        self.stats.count(result.status.value)
        self._finished_one()

    def _finished_one(self) -> None:
        self._slots.release()
        with self._changed:
            self._in_flight -= 1
            self._changed.notify_all()

    def _requeue(self, job: Job) -> None:
        # The TTL applies if finish_jobs.lua ends the job (its cancel was asked).
        ttl_ms = duration_ms(job.result_ttl or self.settings.result_ttl)
        self._outcomes.put(
            Outcome(job.id, job.queue, job.attempts, "requeued", ttl_ms=ttl_ms)
        )
        self.stats.count("requeued")
        logger.info(
            "job requeued at stop id=%s func=%s queue=%s", job.id, job.func, job.queue
        )

    def _record_loop(self) -> None:
        done = False
        while not done:
            batch = [self._outcomes.get()]
            while len(batch) < _OUTCOME_BATCH:
                try:
                    batch.append(self._outcomes.get_nowait())
                except queue.Empty:
                    break
            done = None in batch
            self._write([o for o in batch if o is not None])

    def _write(self, outcomes: list[Outcome]) -> None:
        backoff = _Backoff(
            "recording outcomes", cap_s=self._retry_cap_s, reached=self._claim_retry
        )
        while outcomes:
            try:
                codes = self.store.finish(outcomes, self.worker_id, self.clock())
            except REDIS_ERRORS as err:
                if self._halt.is_set():
                    self._drop(outcomes, err)
                    return
                # Keep them (and their leases, see _heartbeat): these results must
                # reach Redis once it is back.
                backoff.wait(self._halt, err)
                continue
            backoff.reset()
            for outcome, code in zip(outcomes, codes, strict=True):
                if code != 1:
                    logger.warning(
                        "outcome not recorded, job no longer held by this worker "
                        "job id=%s queue=%s outcome=%s",
                        outcome.job_id,
                        outcome.queue,
                        outcome.status,
                    )
            self._forget(*(outcome.job_id for outcome in outcomes))
            return

    def _drop(self, outcomes: list[Outcome], err: Exception) -> None:
        """At exit with Redis still away: the leases will run out and the jobs run
        again elsewhere."""
        for outcome in outcomes:
            logger.error(
                "outcome lost at stop, redis unavailable; the job will run again "
                "job id=%s queue=%s outcome=%s: %s",
                outcome.job_id,
                outcome.queue,
                outcome.status,
                err,
            )

    def _forget(self, *job_ids: str) -> None:
        with self._held_lock:
            for job_id in job_ids:
                self._held.pop(job_id, None)
        with self._changed:
            self._changed.notify_all()

    def _log(self, result: AttemptResult) -> None:
        job = result.job
        if result.status is JobStatus.DEAD and result.error is not None:
            logger.error(
                "job dead id=%s func=%s queue=%s attempt=%d error=%s: %s\n%s",
                job.id,
                job.func,
                job.queue,
                job.attempts,
                result.error.exc_class,
                result.error.message,
                result.error.traceback,
            )
            return
        if result.status is JobStatus.RETRYING and result.error is not None:
            logger.warning(
                "job retrying id=%s func=%s queue=%s attempt=%d retry_in_s=%.1f "
                "error=%s: %s",
                job.id,
                job.func,
                job.queue,
                job.attempts,
                result.retry_in.total_seconds() if result.retry_in else 0.0,
                result.error.exc_class,
                result.error.message,
            )
            return
        logger.info(
            "job %s id=%s func=%s queue=%s attempt=%d duration_ms=%.1f",
            result.status.value,
            job.id,
            job.func,
            job.queue,
            job.attempts,
            result.duration.total_seconds() * 1000,
        )

    # -- maintenance --------------------------------------------------------

    def _maintain_loop(self) -> None:
        backoff = _Backoff(
            "heartbeat", cap_s=self._retry_cap_s, reached=self._claim_retry
        )
        next_beat = next_tick = 0
        while not self._halt.is_set():
            # Timeouts first: they need no Redis, so an outage must not delay them.
            deadline = self._pool.enforce_timeouts()
            now = self.clock()
            try:
                if now >= next_beat:
                    self._heartbeat()
                    next_beat = now + self._lease_ms // 3
                    self._contact()
                if (
                    self.scheduler is not None
                    and now >= next_tick
                    and not self._stopping.is_set()
                ):
                    next_tick = self.scheduler.tick(now)
                    self._contact()
                backoff.reset()
            except REDIS_ERRORS as err:
                backoff.wait(self._halt, err)
                continue
            wake = min(next_beat, next_tick if self.scheduler else next_beat)
            wait_s = max(min((wake - self.clock()) / 1000, 1.0), 0.01)
            if deadline is not None:
                wait_s = min(wait_s, max(deadline - time.monotonic(), 0.01))
            self._wake.wait(wait_s)
            self._wake.clear()

    def _contact(self) -> None:
        """Tell the scheduler Redis answered (it holds recovery after a silence)."""
        if self.scheduler is not None:
            self.scheduler.note_contact(self.clock())

    def _heartbeat(self) -> None:
        now = self.clock()
        with self._held_lock:
            held: dict[str, list[str]] = {}
            for job_id, queue_name in self._held.items():
                held.setdefault(queue_name, []).append(job_id)
        self.store.renew_leases(held, now + self._lease_ms)
        stats = dict(self.stats.by_status)
        self.store.heartbeat(self.info, now + self._lease_ms, stats)

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
        with self._changed:
            while self._in_flight > 0 and time.monotonic() < deadline:
                self._changed.wait(min(deadline - time.monotonic(), 0.5))
        # Past the grace period: hand back what is still running or waiting for a
        # thread, without using an attempt; last first, as each goes to the head.
        for job in reversed(self._pool.take_unstarted()):
            self._requeue(job)
            self._finished_one()
        for job in reversed(self._pool.running_jobs()):
            self._requeue(job)
        self._pool.stop()
        self._outcomes.put(None)
        self._recorder.join(timeout=max(self.config.grace.total_seconds(), 5))
        # Ends the recorder's backoff waits: outcomes still unwritten are dropped.
        self._halt.set()
        self._wake.set()
        self._maintainer.join(timeout=5)
        try:
            self.store.unregister_worker(self.worker_id)
        except REDIS_ERRORS as err:
            logger.warning("could not unregister worker id=%s: %s", self.worker_id, err)


def _bare_job(item: Claimed, queue_name: str) -> Job:
    """Enough of a job to record its failure when its hash cannot be parsed."""
    attempts = item.fields.get("attempts", "0")
    return Job(
        id=item.job_id,
        func=item.fields.get("func", "?"),
        queue=queue_name,
        attempts=int(attempts) if attempts.isdigit() else 0,
        max_attempts=1,
    )


def install_signal_handlers(worker: Worker) -> None:
    """SIGTERM/SIGINT stop claiming; a second SIGINT exits at once."""

    def handle(signum: int, frame: FrameType | None) -> None:
        if worker.stopping and signum == signal.SIGINT:
            logger.warning("second interrupt, exiting now; leases will expire")
            os._exit(1)
        worker.request_stop()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
