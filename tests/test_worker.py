"""The worker in-process, in burst mode, against the suite's real Redis."""

import time
from datetime import timedelta
from typing import Any

import pytest

from django_redisjobs import JobHandle, JobStatus, keys, signals
from django_redisjobs.job import new_job_id
from tests import jobs


def test_burst_worker_runs_a_job_and_stores_its_result(redisjobs: Any) -> None:
    handle = jobs.add.delay(2, 3)

    stats = redisjobs.run_worker()

    handle.refresh()
    assert handle.status is JobStatus.SUCCEEDED
    assert handle.result == 5
    assert handle.attempts == 1
    assert handle.job.finished_at is not None
    assert stats.succeeded == 1
    job_key = keys.job(redisjobs.prefix, "default", handle.id)
    assert 0 < redisjobs.client.pttl(job_key) <= 86_400_000
    assert redisjobs.client.zscore(
        keys.succeeded(redisjobs.prefix, "default"), handle.id
    )
    assert redisjobs.client.zcard(keys.active(redisjobs.prefix, "default")) == 0


def test_worker_serves_queues_it_is_given_and_leaves_others(redisjobs: Any) -> None:
    other = jobs.echo.delay("x")
    default = jobs.add.delay(1, 1)

    redisjobs.run_worker(queues=("default",))

    assert default.refresh().status is JobStatus.SUCCEEDED
    assert other.refresh().status is JobStatus.QUEUED
    redisjobs.run_worker(queues=("other",))
    assert other.refresh().result == "x"


def test_failing_job_retries_then_goes_dead_with_error_and_traceback(
    redisjobs: Any,
) -> None:
    handle = jobs.always_fails.delay("upstream down")

    stats = redisjobs.run_worker()

    handle.refresh()
    assert handle.status is JobStatus.DEAD
    assert handle.attempts == 3
    assert stats.retried == 2 and stats.dead == 1
    assert handle.error is not None
    assert handle.error.exc_class == "builtins.ConnectionError"
    assert handle.error.message == "upstream down"
    assert "raise ConnectionError(message)" in handle.error.traceback
    dead_key = keys.dead(redisjobs.prefix, "default")
    assert redisjobs.client.zscore(dead_key, handle.id) is not None
    ttl_ms = redisjobs.client.pttl(keys.job(redisjobs.prefix, "default", handle.id))
    assert 86_400_000 < ttl_ms <= 7 * 86_400_000


def test_job_that_fails_twice_succeeds_on_third_attempt(redisjobs: Any) -> None:
    handle = jobs.fails_then_succeeds.delay(2)

    redisjobs.run_worker()

    handle.refresh()
    assert handle.status is JobStatus.SUCCEEDED
    assert handle.result == 3
    assert handle.attempts == 3


def test_no_retry_exception_goes_dead_on_first_attempt(redisjobs: Any) -> None:
    handle = jobs.rejects.delay(-1)

    redisjobs.run_worker()

    handle.refresh()
    assert handle.status is JobStatus.DEAD
    assert handle.attempts == 1
    assert handle.error is not None
    assert handle.error.exc_class == "builtins.ValueError"


def test_retry_with_delay_waits_in_scheduled_set(redisjobs: Any) -> None:
    handle = jobs.asks_for_retry.delay(3600)

    redisjobs.run_worker()

    handle.refresh()
    assert handle.status is JobStatus.RETRYING
    assert handle.attempts == 1
    scheduled = keys.scheduled(redisjobs.prefix, "default")
    due_ms = redisjobs.client.zscore(scheduled, handle.id)
    assert due_ms is not None
    assert due_ms - time.time() * 1000 > 3_500_000
    assert handle.job.run_at is not None


def test_unknown_function_goes_dead_with_reason_and_worker_goes_on(
    redisjobs: Any,
) -> None:
    bogus = jobs.add.delay(1, 2)
    redisjobs.client.hset(
        keys.job(redisjobs.prefix, "default", bogus.id), "func", "os.system"
    )
    good = jobs.add.delay(3, 4)

    redisjobs.run_worker()

    bogus.refresh()
    assert bogus.status is JobStatus.DEAD
    assert bogus.error is not None
    assert bogus.error.exc_class.endswith("UnknownBackgroundFunction")
    assert "'os.system'" in bogus.error.message
    assert good.refresh().result == 7


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("args", "{not json", "invalid JSON"),
        ("args", '{"a": 1}', "args must be a JSON list"),
        ("priority", "high", "corrupt field"),
        ("max_attempts", "", "corrupt field"),
        # Each of these once stopped the claim loop or left a burst worker
        # hanging after "Burst done" (the outcome went to the wrong id).
        ("args", "[" * 200_000 + "]" * 200_000, "args"),
        ("timeout_ms", "100000000000000000000", "timeout_ms"),
        ("timeout_ms", "1e20", "corrupt field"),
        ("enqueued_ms", "99999999999999999999", "enqueued_ms"),
        ("id", "someone-else", "'someone-else'"),
        ("queue", "other", "'other'"),
    ],
)
def test_corrupt_job_hash_fails_that_job_and_worker_goes_on(
    redisjobs: Any, field: str, value: str, reason: str
) -> None:
    broken = jobs.add.delay(1, 2)
    redisjobs.client.hset(
        keys.job(redisjobs.prefix, "default", broken.id), field, value
    )
    good = jobs.add.delay(3, 4)

    redisjobs.run_worker()

    fields = redisjobs.client.hgetall(keys.job(redisjobs.prefix, "default", broken.id))
    assert fields["status"] == "dead"
    assert fields["error_class"] == "django_redisjobs.exceptions.InvalidJob"
    assert reason in fields["error_message"]
    assert good.refresh().result == 7


def test_missing_field_names_the_field(redisjobs: Any) -> None:
    broken = jobs.add.delay(1, 2)
    redisjobs.client.hdel(keys.job(redisjobs.prefix, "default", broken.id), "kwargs")

    redisjobs.run_worker()

    fields = redisjobs.client.hgetall(keys.job(redisjobs.prefix, "default", broken.id))
    assert fields["status"] == "dead"
    assert "no 'kwargs' field" in fields["error_message"]


def test_id_without_hash_is_dropped_from_queue(redisjobs: Any) -> None:
    ready = keys.ready(redisjobs.prefix, "default")
    redisjobs.client.rpush(ready, new_job_id())
    good = jobs.add.delay(1, 1)

    redisjobs.run_worker()

    assert redisjobs.client.llen(ready) == 0
    assert good.refresh().result == 2


def test_unserialisable_return_value_goes_dead_with_reason(redisjobs: Any) -> None:
    handle = jobs.returns_unserialisable.delay()

    redisjobs.run_worker()

    handle.refresh()
    assert handle.status is JobStatus.DEAD
    assert handle.error is not None
    assert "The return value is <object object" in handle.error.message


def test_job_reads_its_context_and_reports_progress(redisjobs: Any) -> None:
    handle = jobs.context_info.delay()

    redisjobs.run_worker()

    handle.refresh()
    assert handle.result == {"id": handle.id, "attempt": 1, "queue": "default"}
    assert handle.progress == 1.0


def test_async_jobs_run_concurrently_on_one_loop(redisjobs: Any) -> None:
    handles = [jobs.async_add.delay(i, i) for i in range(20)]

    started = time.monotonic()
    redisjobs.run_worker(concurrency=20, prefetch=0)
    elapsed = time.monotonic() - started

    assert [h.refresh().result for h in handles] == [2 * i for i in range(20)]
    # 20 jobs of 10 ms each, run one by one, would take 200 ms at least.
    assert elapsed < 2.0


def test_sync_job_past_its_timeout_is_stopped_and_fails(redisjobs: Any) -> None:
    handle = jobs.sleeps.delay(5.0)

    started = time.monotonic()
    redisjobs.run_worker()

    handle.refresh()
    assert handle.status is JobStatus.DEAD
    assert handle.error is not None
    assert handle.error.exc_class == "django_redisjobs.exceptions.JobTimeout"
    assert "timeout of 0.2 s" in handle.error.message
    assert time.monotonic() - started < 4.0


def test_async_job_past_its_timeout_fails(redisjobs: Any) -> None:
    handle = jobs.async_sleeps.delay(5.0)

    redisjobs.run_worker()

    handle.refresh()
    assert handle.status is JobStatus.DEAD
    assert handle.error is not None
    assert handle.error.exc_class == "django_redisjobs.exceptions.JobTimeout"


def test_signals_report_start_and_outcome(redisjobs: Any) -> None:
    seen: list[tuple[str, Any]] = []

    def started(sender: str, job: Any, **kwargs: Any) -> None:
        seen.append(("started", job.id))

    def finished(sender: str, job: Any, outcome: JobStatus, **kwargs: Any) -> None:
        seen.append(("finished", outcome))

    signals.job_started.connect(started)
    signals.job_finished.connect(finished)
    try:
        handle = jobs.add.delay(1, 2)
        redisjobs.run_worker()
    finally:
        signals.job_started.disconnect(started)
        signals.job_finished.disconnect(finished)

    assert seen == [("started", handle.id), ("finished", JobStatus.SUCCEEDED)]


def test_failing_signal_receiver_does_not_fail_the_job(redisjobs: Any) -> None:
    def broken(**kwargs: Any) -> None:
        raise RuntimeError("receiver bug")

    signals.job_started.connect(broken)
    try:
        handle = jobs.add.delay(1, 2)
        redisjobs.run_worker()
    finally:
        signals.job_started.disconnect(broken)

    assert handle.refresh().result == 3


def test_wait_returns_when_worker_finishes_the_job(redisjobs: Any) -> None:
    import threading

    handle = jobs.add.delay(20, 22)
    worker = threading.Thread(target=redisjobs.run_worker)
    worker.start()
    try:
        assert handle.wait(timedelta(seconds=10)).result == 42
    finally:
        worker.join()


def test_max_jobs_stops_after_that_many_claims(redisjobs: Any) -> None:
    handles = [jobs.add.delay(i, 0) for i in range(5)]

    stats = redisjobs.run_worker(max_jobs=2, prefetch=0, concurrency=1, burst=False)

    assert stats.claimed == 2
    statuses = [h.refresh().status for h in handles]
    assert statuses.count(JobStatus.SUCCEEDED) == 2
    assert statuses.count(JobStatus.QUEUED) == 3


def test_worker_registers_heartbeat_and_unregisters_at_stop(redisjobs: Any) -> None:
    worker = redisjobs.worker()
    jobs.add.delay(1, 1)

    worker.run()

    assert (
        redisjobs.client.zscore(keys.workers(redisjobs.prefix), worker.worker_id)
        is None
    )
    assert not redisjobs.client.exists(keys.worker(redisjobs.prefix, worker.worker_id))
    assert "default" in redisjobs.store.known_queues()


def test_load_finds_a_job_by_id_alone(redisjobs: Any) -> None:
    handle = jobs.echo.delay({"a": [1, 2]})

    loaded = JobHandle.load(handle.id)

    assert loaded.queue == "other"
    assert loaded.job.args == [{"a": [1, 2]}]


def test_system_exit_in_a_job_fails_the_job_not_the_worker(redisjobs: Any) -> None:
    handle = jobs.exits_process.delay(3)
    good = jobs.add.delay(1, 1)

    redisjobs.run_worker(concurrency=1)

    handle.refresh()
    # Not an Exception, so not retried: SystemExit asks to stop, not to try again.
    assert handle.status is JobStatus.DEAD
    assert handle.attempts == 1
    assert handle.error is not None
    assert handle.error.exc_class == "builtins.SystemExit"
    assert good.refresh().result == 2


def test_timeouts_are_enforced_while_redis_is_unreachable(
    make_redis_server: Any, redisjobs: Any
) -> None:
    from django.test import override_settings

    server = make_redis_server(appendonly="yes", appendfsync="always")
    settings = {**redisjobs.settings, "REDIS_URL": server.url}
    with override_settings(REDISJOBS=settings):
        handle = jobs.sleeps.delay(30.0)
        worker = redisjobs.worker(burst=False, concurrency=1, prefetch=0)
        import threading

        thread = threading.Thread(target=worker.run)
        thread.start()
        try:
            deadline = time.monotonic() + 10
            while handle.refresh().status is not JobStatus.ACTIVE:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            server.stop()
            # The watchdog needs no Redis: the 0.2 s timeout still stops the job,
            # and its outcome waits in memory until Redis is back.
            deadline = time.monotonic() + 10
            while worker.stats.dead == 0:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            server.start()
            deadline = time.monotonic() + 10
            while handle.refresh().status is not JobStatus.DEAD:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        finally:
            worker.request_stop()
            thread.join(timeout=10)
    assert handle.error is not None
    assert handle.error.exc_class == "django_redisjobs.exceptions.JobTimeout"


def test_worker_heartbeat_restores_its_queue_names(redisjobs: Any) -> None:
    worker = redisjobs.worker(queues=("default", "other"))
    redisjobs.client.delete(keys.queues(redisjobs.prefix))

    worker._heartbeat.send()

    assert redisjobs.store.known_queues() == ["default", "other"]
