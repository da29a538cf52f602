"""Cancellation end to end: waiting jobs, running jobs that honour (or ignore) the
flag, prefetched jobs, pending handles and eager mode."""

import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.test import override_settings

from django_redisjobs import JobDoesNotExist, JobHandle, JobStatus, keys, signals
from django_redisjobs.context import CancelCheck, JobContext
from django_redisjobs.execution import (
    CANCEL_CHECK_AFTER_MS,
    cancelled_before_start,
    waited_for_a_thread,
)
from django_redisjobs.job import Job, now_epoch_ms, to_ms
from django_redisjobs.scheduler import Scheduler
from django_redisjobs.worker import Worker, WorkerConfig, WorkerStats
from tests import jobs, queueing_jobs
from tests.queueing_jobs import (
    blocks,
    cancels_itself,
    fails_after_go_on,
    honours_cancel,
    ignores_cancel,
    plain,
    record,
)


@pytest.fixture(autouse=True)
def _reset_jobs() -> Iterator[None]:
    queueing_jobs.reset()
    yield
    queueing_jobs.go_on.set()  # never leave a job waiting
    queueing_jobs.reset()


class WorkerThread:
    """A burst worker, one job at a time, in a thread of the test process."""

    def __init__(
        self, redisjobs: Any, clock: Callable[[], int] = now_epoch_ms, **config: Any
    ) -> None:
        config = {"queues": ("default",), "burst": True, **config}
        config.setdefault("concurrency", 1)
        config.setdefault("prefetch", 0)
        self.stats: WorkerStats | None = None
        self.worker = Worker(WorkerConfig(**config), clock=clock)
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        self.stats = self.worker.run()

    def __enter__(self) -> "WorkerThread":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        queueing_jobs.go_on.set()
        self.thread.join(20)
        assert not self.thread.is_alive()


def wait_until_running() -> None:
    assert queueing_jobs.running.wait(20), "the job never started"


# -- waiting jobs ------------------------------------------------------------------


def test_cancel_queued_job_ends_it_and_no_worker_runs_it(redisjobs: Any) -> None:
    handle = record.delay("never")
    kept = record.delay("kept")

    assert handle.cancel() is True

    assert handle.status is JobStatus.CANCELLED  # refreshed by cancel()
    assert handle.is_finished
    assert handle.job.finished_at is not None
    assert handle.wait(timedelta(seconds=0)) is handle
    redisjobs.run_worker()
    assert queueing_jobs.ran == ["kept"]
    assert kept.refresh().status is JobStatus.SUCCEEDED
    cancelled = redisjobs.store.list_ids("default", "cancelled", 0, 10)
    assert cancelled == [handle.id]


def test_cancel_scheduled_job_keeps_it_from_ever_becoming_ready(
    redisjobs: Any,
) -> None:
    handle = record.enqueue(args=["never"], delay=timedelta(hours=1))
    assert handle.job.run_at is not None

    assert handle.cancel() is True

    Scheduler(redisjobs.store, ["default"]).tick(to_ms(handle.job.run_at))
    assert handle.refresh().status is JobStatus.CANCELLED
    assert redisjobs.store.counts("default")["queued"] == 0


def test_cancel_retrying_job_stops_its_retries(redisjobs: Any) -> None:
    handle = jobs.asks_for_retry.delay(3600)
    redisjobs.run_worker()
    assert handle.refresh().status is JobStatus.RETRYING

    assert handle.cancel() is True

    assert handle.status is JobStatus.CANCELLED
    assert handle.attempts == 1
    assert redisjobs.store.counts("default")["scheduled"] == 0


def test_cancel_of_a_finished_job_is_a_no_op_returning_false(redisjobs: Any) -> None:
    handle = record.delay("done")
    redisjobs.run_worker()

    assert handle.cancel() is False

    assert handle.status is JobStatus.SUCCEEDED
    assert handle.result == "done"


def test_cancel_of_an_expired_job_raises(redisjobs: Any) -> None:
    handle = record.delay("x")
    redisjobs.client.delete(keys.job(redisjobs.prefix, "default", handle.id))
    with pytest.raises(JobDoesNotExist):
        handle.cancel()


def test_cancel_of_a_loaded_handle(redisjobs: Any) -> None:
    job_id = record.delay("x").id
    assert JobHandle.load(job_id).cancel() is True
    assert JobHandle.load(job_id).status is JobStatus.CANCELLED


# -- running jobs ------------------------------------------------------------------


def test_running_job_that_honours_the_flag_ends_cancelled(redisjobs: Any) -> None:
    outcomes: list[JobStatus] = []

    def finished(sender: str, outcome: JobStatus, **kwargs: Any) -> None:
        outcomes.append(outcome)

    signals.job_finished.connect(finished)
    try:
        handle = honours_cancel.delay()
        with WorkerThread(redisjobs) as worker:
            wait_until_running()

            assert handle.cancel() is True
            assert handle.status is JobStatus.ACTIVE
            assert handle.job.cancel_requested
    finally:
        signals.job_finished.disconnect(finished)

    handle.refresh()
    assert handle.status is JobStatus.CANCELLED
    assert handle.attempts == 1
    assert handle.error is not None
    assert handle.error.exc_class == "django_redisjobs.exceptions.JobCancelled"
    assert handle.error.message == "Stopped at the caller's request."
    assert worker.stats is not None
    assert worker.stats.by_status == {"cancelled": 1}
    assert outcomes == [JobStatus.CANCELLED]
    assert redisjobs.store.list_ids("default", "cancelled", 0, 10) == [handle.id]


def test_running_job_that_ignores_the_flag_ends_as_it_would_have(
    redisjobs: Any,
) -> None:
    handle = ignores_cancel.delay()
    with WorkerThread(redisjobs):
        wait_until_running()
        assert handle.cancel() is True

    assert handle.refresh().status is JobStatus.SUCCEEDED
    assert handle.result == "finished anyway"


def test_running_job_that_fails_after_a_cancel_is_not_retried(
    redisjobs: Any,
) -> None:
    handle = fails_after_go_on.delay()  # max_attempts=3
    with WorkerThread(redisjobs):
        wait_until_running()
        handle.cancel()

    handle.refresh()
    assert handle.status is JobStatus.CANCELLED
    assert handle.attempts == 1
    assert handle.error is not None and handle.error.message == "upstream down"


def test_prefetched_job_cancelled_before_it_starts_never_runs(
    redisjobs: Any,
) -> None:
    first = blocks.delay("first")
    second = record.delay("second")
    # The worker's clock runs 10 s behind, so its claims look 10 s old when the
    # jobs start: the second job has "waited for a thread" past the threshold.
    with WorkerThread(redisjobs, prefetch=1, clock=lambda: now_epoch_ms() - 10_000):
        wait_until_running()
        # Both were claimed in one batch; the second waits for the only thread.
        assert second.refresh().status is JobStatus.ACTIVE

        assert second.cancel() is True

    assert queueing_jobs.ran == ["first"]
    assert first.refresh().status is JobStatus.SUCCEEDED
    second.refresh()
    assert second.status is JobStatus.CANCELLED
    assert second.error is not None
    assert "cancelled before it started" in second.error.message


# -10 s: "just claimed" even when the checks below run more than 50 ms later on a
# loaded machine (the claim time is only compared with the clock).
@pytest.mark.parametrize(
    ("claimed_ago_ms", "runs"),
    [(-10_000, True), (CANCEL_CHECK_AFTER_MS + 1_000, False)],
)
def test_only_a_job_that_waited_for_a_thread_is_checked_before_it_starts(
    redisjobs: Any, claimed_ago_ms: int, runs: bool
) -> None:
    handle = record.delay("x")
    now = now_epoch_ms()
    (job,) = redisjobs.store.claim("default", "w1", 1, now - claimed_ago_ms, 60_000)
    handle.cancel()
    assert isinstance(job, Job)

    assert waited_for_a_thread(job) is not runs
    result = cancelled_before_start(job, redisjobs.store)
    assert (result is None) is runs
    assert cancelled_before_start(job, None) is None  # eager mode: nothing to read


def test_job_may_cancel_itself(redisjobs: Any) -> None:
    handle = cancels_itself.delay()
    redisjobs.run_worker()
    handle.refresh()
    assert handle.status is JobStatus.CANCELLED
    assert handle.attempts == 1
    assert handle.error is not None and handle.error.message == "Nothing left to do."


# -- is_cancelled() ------------------------------------------------------------------


def test_is_cancelled_reads_redis_at_most_once_per_max_age(redisjobs: Any) -> None:
    handle = plain.delay("x")
    redisjobs.store.claim("default", "w1", 1, now_epoch_ms(), 30_000)
    now = [100.0]
    context = JobContext(
        handle.id,
        "default",
        plain.name,
        1,
        1,
        redisjobs.store,
        CancelCheck(max_age_s=0.5, clock=lambda: now[0]),
    )

    assert context.is_cancelled() is False
    handle.cancel()
    now[0] += 0.49
    assert context.is_cancelled() is False  # still the cached answer
    now[0] += 0.01
    assert context.is_cancelled() is True
    redisjobs.client.hdel(
        keys.job(redisjobs.prefix, "default", handle.id), "cancel_requested"
    )
    now[0] += 10
    assert context.is_cancelled() is True  # a cancel, once seen, stands


def test_is_cancelled_keeps_its_last_answer_when_redis_is_down(
    make_redis_server: Any,
) -> None:
    server = make_redis_server()
    settings = {"REDIS_URL": server.url, "PREFIX": "down"}
    with override_settings(REDISJOBS=settings):
        from django_redisjobs.queue import get_store

        now = [0.0]
        context = JobContext(
            "id",
            "default",
            "f",
            1,
            1,
            get_store(),
            CancelCheck(clock=lambda: now[0]),
        )
        assert context.is_cancelled() is False
        server.kill()
        now[0] += 1
        assert context.is_cancelled() is False


def test_is_cancelled_is_false_in_eager_mode() -> None:
    context = JobContext("id", "default", "f", 1, 1, None)
    assert context.is_cancelled() is False


# -- handles without a job in Redis ----------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_pending_handle_cancelled_before_commit_is_never_written(
    redisjobs: Any,
) -> None:
    with transaction.atomic():
        dropped = record.delay("dropped")
        kept = record.delay("kept")
        assert dropped.cancel() is True
        assert dropped.status is JobStatus.CANCELLED

    assert dropped.status is JobStatus.CANCELLED
    assert kept.status is JobStatus.QUEUED
    assert redisjobs.store.counts("default")["queued"] == 1
    assert not redisjobs.client.exists(
        keys.job(redisjobs.prefix, "default", dropped.id)
    )
    redisjobs.run_worker()
    assert queueing_jobs.ran == ["kept"]


def test_eager_handle_cannot_be_cancelled() -> None:
    settings = {"REDIS_URL": "redis://127.0.0.1:1/0", "EAGER": True}
    with override_settings(REDISJOBS=settings):
        handle = record.delay("ran")
        assert handle.cancel() is False
    assert handle.status is JobStatus.SUCCEEDED


def test_eager_job_raising_job_cancelled_ends_cancelled() -> None:
    settings = {"REDIS_URL": "redis://127.0.0.1:1/0", "EAGER": True}
    with override_settings(REDISJOBS=settings):
        handle = cancels_itself.delay()
    assert handle.status is JobStatus.CANCELLED
    assert handle.attempts == 1
