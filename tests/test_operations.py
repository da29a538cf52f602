"""Operator actions through the store, `JobHandle.retry()` and the worker:
retry, bulk cancel, delete, purge, empty, pause and resume, progress messages
and the outcome counters (issue 12)."""

import threading
import time
from datetime import timedelta

import pytest

from django_redisjobs import JobDoesNotExist, JobHandle, JobStatus, keys
from django_redisjobs.job import now_epoch_ms
from django_redisjobs.queue import Cancelled, JobState
from django_redisjobs.worker import Worker, WorkerConfig
from tests import jobs
from tests.conftest import RedisJobs
from tests.polling import wait_until

Q = "default"


def dead_job(redisjobs: RedisJobs) -> JobHandle:
    handle = jobs.always_fails.using(max_attempts=1).delay("boom")
    redisjobs.run_worker()
    return handle.refresh()


def test_retry_keeps_the_id_resets_attempts_and_keeps_the_history(
    redisjobs: RedisJobs,
) -> None:
    handle = dead_job(redisjobs)
    assert handle.status is JobStatus.DEAD
    assert redisjobs.client.pttl(keys.job(redisjobs.prefix, Q, handle.id)) > 0

    assert handle.retry() is True

    assert handle.status is JobStatus.QUEUED
    assert handle.attempts == 0
    assert handle.error is None
    assert [a.outcome for a in handle.history] == ["dead"]
    assert redisjobs.client.pttl(keys.job(redisjobs.prefix, Q, handle.id)) == -1
    assert redisjobs.store.counts(Q)[JobState.DEAD] == 0
    redisjobs.run_worker()
    assert handle.refresh().status is JobStatus.DEAD
    assert handle.attempts == 1
    assert [a.outcome for a in handle.history] == ["dead", "dead"]


def test_retry_of_a_job_that_succeeded_or_waits_changes_nothing(
    redisjobs: RedisJobs,
) -> None:
    waiting = jobs.add.delay(1, 2)
    assert waiting.retry() is False
    redisjobs.run_worker()
    assert waiting.refresh().status is JobStatus.SUCCEEDED
    assert waiting.retry() is False
    assert waiting.status is JobStatus.SUCCEEDED


def test_retry_of_a_missing_job_raises(redisjobs: RedisJobs) -> None:
    handle = dead_job(redisjobs)
    redisjobs.client.delete(keys.job(redisjobs.prefix, Q, handle.id))
    with pytest.raises(JobDoesNotExist, match="does not exist in queue 'default'"):
        handle.retry()


def test_retry_of_a_cancelled_job_queues_it_again(redisjobs: RedisJobs) -> None:
    handle = jobs.add.delay(2, 3)
    handle.cancel()
    assert handle.retry() is True
    redisjobs.run_worker()
    assert handle.refresh().result == 5


def test_retry_dead_retries_every_dead_job_and_says_how_many(
    redisjobs: RedisJobs,
) -> None:
    handles = [jobs.always_fails.using(max_attempts=1).delay("x") for _ in range(3)]
    redisjobs.run_worker()
    assert redisjobs.store.retry_dead(Q, now_epoch_ms(), limit=2) == 2
    assert redisjobs.store.counts(Q)[JobState.DEAD] == 1
    assert redisjobs.store.retry_dead(Q, now_epoch_ms()) == 1
    assert redisjobs.store.retry_dead(Q, now_epoch_ms()) == 0
    assert {h.refresh().status for h in handles} == {JobStatus.QUEUED}


def test_cancel_many_cancels_waiting_jobs_and_flags_none_for_missing(
    redisjobs: RedisJobs,
) -> None:
    first, second = jobs.add.delay(1, 1), jobs.add.delay(2, 2)
    found = redisjobs.store.cancel_many([first.id, "0" * 32, second.id], Q, 1)
    assert found == [Cancelled.ENDED, None, Cancelled.ENDED]
    assert redisjobs.store.counts(Q)[JobState.CANCELLED] == 2


def test_delete_removes_ended_jobs_only(redisjobs: RedisJobs) -> None:
    ended = jobs.add.delay(1, 1)
    redisjobs.run_worker()
    waiting = jobs.add.delay(2, 2)
    codes = redisjobs.store.delete([ended.id, waiting.id, "0" * 32], Q)
    assert codes == [1, 0, -1]
    assert redisjobs.store.counts(Q)[JobState.SUCCEEDED] == 0
    with pytest.raises(JobDoesNotExist):
        ended.refresh()
    assert waiting.refresh().status is JobStatus.QUEUED


def test_purge_dead_deletes_the_dead_jobs_in_batches(redisjobs: RedisJobs) -> None:
    for _ in range(3):
        jobs.always_fails.using(max_attempts=1).delay("x")
    redisjobs.run_worker()
    assert redisjobs.store.purge_dead(Q, limit=2) == 2
    assert redisjobs.store.purge_dead(Q) == 1
    assert redisjobs.store.counts(Q)[JobState.DEAD] == 0


def test_empty_ready_deletes_ready_jobs_and_leaves_scheduled_ones(
    redisjobs: RedisJobs,
) -> None:
    ready = [jobs.add.delay(i, i) for i in range(3)]
    urgent = jobs.add.using(priority=10).delay(0, 0)
    later = jobs.add.enqueue((9, 9), delay=timedelta(hours=1))
    assert redisjobs.store.empty_ready(Q) == 4
    counts = redisjobs.store.counts(Q)
    assert (counts[JobState.QUEUED], counts[JobState.SCHEDULED]) == (0, 1)
    for handle in [*ready, urgent]:
        with pytest.raises(JobDoesNotExist):
            handle.refresh()
    assert later.refresh().status is JobStatus.SCHEDULED
    assert not redisjobs.client.exists(keys.marker(redisjobs.prefix, Q))


def test_a_paused_queue_accepts_jobs_but_a_worker_claims_none(
    redisjobs: RedisJobs,
) -> None:
    assert redisjobs.store.pause(Q) is True
    assert redisjobs.store.pause(Q) is False
    handle = jobs.add.delay(1, 2)
    stats = redisjobs.run_worker()  # a burst worker: it must not wait for ever
    assert sum(stats.by_status.values()) == 0
    assert handle.refresh().status is JobStatus.QUEUED
    assert redisjobs.store.paused_queues([Q, "other"]) == {Q}
    assert redisjobs.store.resume(Q) is True
    redisjobs.run_worker()
    assert handle.refresh().result == 3


@pytest.mark.slow
def test_a_running_worker_sees_pause_and_resume_within_a_second(
    redisjobs: RedisJobs,
) -> None:
    worker = Worker(
        WorkerConfig(queues=(Q,), concurrency=1, idle_wait=timedelta(seconds=2))
    )
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        first = jobs.add.delay(1, 1)
        wait_until(lambda: first.refresh().is_finished)
        redisjobs.store.pause(Q)
        held = jobs.add.delay(2, 2)
        time.sleep(1.0)
        assert held.refresh().status is JobStatus.QUEUED
        started = time.monotonic()
        redisjobs.store.resume(Q)
        wait_until(lambda: held.refresh().is_finished, timeout_s=5)
        assert time.monotonic() - started < 1.0
    finally:
        worker.request_stop()
        thread.join(10)


def test_stream_yields_each_progress_report_then_the_end(
    redisjobs: RedisJobs,
) -> None:
    handle = jobs.reports_progress.delay(3)
    updates = handle.stream(timeout=timedelta(seconds=20))
    seen = [(next(updates).status, 0.0, "")]  # subscribed now
    worker = threading.Thread(target=redisjobs.run_worker)
    worker.start()
    seen += [(h.status, h.progress, h.progress_message) for h in updates]
    worker.join(10)
    assert seen[0] == (JobStatus.QUEUED, 0.0, "")
    assert seen[-1] == (JobStatus.SUCCEEDED, 1.0, "step 3 of 3")
    # Reports may merge when they come faster than a read; none is invented.
    assert {m for _, _, m in seen[1:-1]} <= {
        "step 1 of 3",
        "step 2 of 3",
        "step 3 of 3",
    }


def test_progress_is_announced_on_the_job_channel(redisjobs: RedisJobs) -> None:
    handle = jobs.reports_progress.delay(2)
    pubsub = redisjobs.client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(redisjobs.store.end_channel(handle.id, Q))
    try:
        redisjobs.run_worker()
        heard: list[str] = []
        deadline = time.monotonic() + 5
        while len(heard) < 3 and time.monotonic() < deadline:
            message = pubsub.get_message(timeout=0.1)
            if message:
                heard.append(message["data"])
    finally:
        pubsub.close()
    assert heard == ["progress", "progress", "succeeded"]
    handle.refresh()
    assert (handle.progress, handle.progress_message) == (1.0, "step 2 of 2")


def test_outcomes_are_counted_per_minute_and_hour(redisjobs: RedisJobs) -> None:
    jobs.add.delay(1, 1)
    jobs.add.delay(2, 2)
    jobs.always_fails.using(max_attempts=1).delay("x")
    redisjobs.run_worker()
    minute = now_epoch_ms() // 60_000
    (counts,) = redisjobs.store.outcome_counts([Q], "m", minute, 1)
    assert (counts["succeeded"], counts["dead"]) == (2, 1)
    (counts,) = redisjobs.store.outcome_counts([Q], "h", minute // 60, 1)
    assert counts["succeeded"] == 2
    ttl = redisjobs.client.pttl(keys.stats_minute(redisjobs.prefix, Q, minute))
    assert 0 < ttl <= 2 * 3_600_000


def test_trimmed_workers_are_kept_an_hour_as_lost(redisjobs: RedisJobs) -> None:
    redisjobs.client.zadd(keys.workers(redisjobs.prefix), {"gone": 1_000})
    assert redisjobs.store.trim_workers(2_000) == 1
    assert redisjobs.store.lost_workers(2_000) == [("gone", 1_000)]
    assert redisjobs.store.lost_workers(1_000 + 3_600_001) == []


def test_the_retrying_index_follows_retries_promotions_cancels_and_retries(
    redisjobs: RedisJobs,
) -> None:
    waiting = jobs.asks_for_retry.delay(600)
    later = jobs.add.enqueue((1, 1), delay=timedelta(hours=1))
    redisjobs.run_worker()
    (summary,) = redisjobs.store.summaries([Q])
    assert (summary.retrying, summary.delayed) == (1, 1)
    waiting.cancel()
    (summary,) = redisjobs.store.summaries([Q])
    assert (summary.retrying, summary.delayed) == (0, 1)
    assert later.refresh().status is JobStatus.SCHEDULED
    again = jobs.asks_for_retry.delay(0.001)
    redisjobs.run_worker()  # retried once (due at once, promoted), then dead
    assert again.refresh().status is JobStatus.DEAD
    assert redisjobs.store.summaries([Q])[0].retrying == 0
    third = jobs.asks_for_retry.delay(600)
    redisjobs.run_worker()
    assert third.retry() is True  # a retrying job retried now leaves the index
    assert redisjobs.store.summaries([Q])[0].retrying == 0
