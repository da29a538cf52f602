"""Delayed jobs and retries: the scheduler tick on an injected clock, and one run of
a real worker that shows a delayed job starting within a second of its time."""

import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from django_redisjobs import JobStatus, keys
from django_redisjobs.job import now_epoch_ms, to_ms
from django_redisjobs.queue import JobStore
from django_redisjobs.scheduler import Scheduler, SchedulerConfig
from django_redisjobs.worker import Worker, WorkerConfig
from tests import jobs, queueing_jobs

HOUR = timedelta(hours=1)


def at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def test_delayed_job_is_scheduled_until_a_tick_at_its_due_time(redisjobs: Any) -> None:
    handle = queueing_jobs.plain.enqueue(args=["x"], delay=HOUR)
    assert handle.job.run_at is not None
    due_ms = to_ms(handle.job.run_at)
    scheduler = Scheduler(redisjobs.store, ["default"])

    next_tick = scheduler.tick(due_ms - 1)

    assert handle.refresh().status is JobStatus.SCHEDULED
    assert redisjobs.store.counts("default")["queued"] == 0
    # Due in 1 ms: the scheduler sleeps until then, not for its full second.
    assert next_tick == due_ms
    assert scheduler.next_due_ms == due_ms

    scheduler.tick(due_ms)

    assert handle.refresh().status is JobStatus.QUEUED
    assert redisjobs.client.lrange(keys.ready(redisjobs.prefix, "default"), 0, -1) == [
        handle.id
    ]
    assert scheduler.next_due_ms == -1
    assert redisjobs.client.exists(keys.marker(redisjobs.prefix, "default"))


def test_run_at_in_another_zone_is_due_at_that_instant(redisjobs: Any) -> None:
    from zoneinfo import ZoneInfo

    run_at = datetime(2099, 3, 1, 9, 30, tzinfo=ZoneInfo("Europe/Paris"))
    handle = queueing_jobs.plain.enqueue(args=["x"], run_at=run_at)
    scheduler = Scheduler(redisjobs.store, ["default"])

    scheduler.tick(to_ms(run_at) - 1)
    assert handle.refresh().status is JobStatus.SCHEDULED
    scheduler.tick(to_ms(run_at))
    assert handle.refresh().status is JobStatus.QUEUED
    assert handle.job.run_at == run_at.astimezone(UTC)


def test_scheduler_sleeps_at_most_500_ms_when_nothing_is_due_sooner(
    redisjobs: Any,
) -> None:
    queueing_jobs.plain.enqueue(args=["x"], delay=HOUR)
    now_ms = now_epoch_ms()
    scheduler = Scheduler(redisjobs.store, ["default"], SchedulerConfig())

    assert scheduler.tick(now_ms) == now_ms + 500
    assert Scheduler(redisjobs.store, ["empty"]).tick(now_ms) == now_ms + 500


def test_one_tick_promotes_every_due_job_in_bounded_batches(redisjobs: Any) -> None:
    run_at = at(now_epoch_ms() + 60_000)
    handles = [queueing_jobs.plain.enqueue(args=[i], run_at=run_at) for i in range(7)]
    later = queueing_jobs.plain.enqueue(args=["later"], delay=HOUR)
    calls: list[int] = []

    class CountingStore(JobStore):
        def promote_due(self, queue: str, now_ms: int, limit: int) -> tuple[int, int]:
            moved, next_due = super().promote_due(queue, now_ms, limit)
            calls.append(moved)
            return moved, next_due

    store = CountingStore(redisjobs.store.connection, redisjobs.store.settings)
    scheduler = Scheduler(store, ["default"], SchedulerConfig(promote_limit=3))

    scheduler.tick(to_ms(run_at))

    assert calls == [3, 3, 1]
    assert {h.refresh().status for h in handles} == {JobStatus.QUEUED}
    assert later.refresh().status is JobStatus.SCHEDULED
    assert scheduler.next_due_ms == to_ms(later.job.run_at or run_at)


def test_due_jobs_become_ready_in_due_order(redisjobs: Any) -> None:
    base = now_epoch_ms() + 60_000
    third = queueing_jobs.plain.enqueue(args=[3], run_at=at(base + 30))
    first = queueing_jobs.plain.enqueue(args=[1], run_at=at(base + 10))
    second = queueing_jobs.plain.enqueue(args=[2], run_at=at(base + 20))

    Scheduler(redisjobs.store, ["default"]).tick(base + 30)

    ready = redisjobs.client.lrange(keys.ready(redisjobs.prefix, "default"), 0, -1)
    assert ready == [first.id, second.id, third.id]


def test_retry_with_backoff_waits_in_the_scheduled_set_until_its_tick(
    redisjobs: Any,
) -> None:
    handle = jobs.asks_for_retry.delay(3600)  # raises Retry(delay=1 h), 2 attempts

    redisjobs.run_worker()

    job = handle.refresh().job
    assert handle.status is JobStatus.RETRYING and handle.attempts == 1
    assert job.run_at is not None
    due_ms = to_ms(job.run_at)
    scheduler = Scheduler(redisjobs.store, ["default"])
    scheduler.tick(due_ms - 1)
    assert handle.refresh().status is JobStatus.RETRYING

    scheduler.tick(due_ms)
    assert handle.refresh().status is JobStatus.QUEUED

    redisjobs.run_worker()
    assert handle.refresh().status is JobStatus.DEAD
    assert handle.attempts == 2


def test_worker_without_scheduler_leaves_due_jobs_scheduled(redisjobs: Any) -> None:
    handle = queueing_jobs.plain.enqueue(args=["x"], delay=HOUR)
    two_hours_on = now_epoch_ms() + 2 * 3_600_000

    def run(scheduler: bool) -> None:
        config = WorkerConfig(queues=("default",), burst=True, scheduler=scheduler)
        Worker(config, clock=lambda: two_hours_on).run()

    run(scheduler=False)
    assert handle.refresh().status is JobStatus.SCHEDULED

    run(scheduler=True)
    assert handle.refresh().status is JobStatus.SUCCEEDED


class CountingScheduler(Scheduler):
    def __init__(self, store: JobStore, queues: Sequence[str]) -> None:
        super().__init__(store, queues)
        self.ticks = 0
        self.ticked = threading.Event()

    def tick(self, now_ms: int) -> int:
        self.ticks += 1
        wake_ms = super().tick(now_ms)
        self.ticked.set()
        return wake_ms


def test_idle_worker_starts_a_delayed_job_within_a_second_of_its_due_time(
    redisjobs: Any,
) -> None:
    # The claiming thread blocks for up to 30 s: only the scheduler's promotion,
    # which sets the marker its BZPOPMIN waits on, can start the job in time.
    scheduler = CountingScheduler(redisjobs.store, ("default",))
    worker = redisjobs.worker(
        burst=False, idle_wait=timedelta(seconds=30), scheduler_object=scheduler
    )
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        # Enqueue just after a tick that found nothing: the worst case, since the
        # scheduler then sleeps its full 500 ms before it sees the new job.
        assert scheduler.ticked.wait(10)
        handle = queueing_jobs.started_at.enqueue(delay=timedelta(milliseconds=300))
        assert handle.job.run_at is not None
        due_s = handle.job.run_at.timestamp()
        started_s = handle.wait(timedelta(seconds=10)).result
        ticks = scheduler.ticks
    finally:
        worker.request_stop()
        # Wake the claiming thread out of its BZPOPMIN so that it sees the stop.
        redisjobs.client.zadd(keys.marker(redisjobs.prefix, "default"), {"ready": 0})
        thread.join(10)
    assert not thread.is_alive()

    lateness_s = started_s - due_s
    print(f"delayed job lateness_s={lateness_s:.3f} ticks={ticks}")  # noqa: T201
    assert -0.01 <= lateness_s < 1.0
    # About 0.3 s went by: a tick per 500 ms (plus one at a due time when the
    # scheduler knows of one), not a busy loop.
    assert ticks <= 4
    assert time.time() - due_s < 5
