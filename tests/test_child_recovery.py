"""What the supervisor writes to Redis for a worker process it lost (`ChildRecovery`).

Jobs are claimed under the lost process's worker id with `JobStore.claim`, as the
process would have; the recovery thread then records the loss against the suite's
real Redis. Each test ends with `close()`, which makes the thread's last try and
joins it, so what it wrote can be read back at once.
"""

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.test import override_settings

from django_redisjobs import JobHandle, JobStatus, keys, signals
from django_redisjobs.conf import get_settings
from django_redisjobs.job import Job, now_epoch_ms
from django_redisjobs.queue import WORKER_LOST, Outcome, get_store
from django_redisjobs.registry import FunctionSpec, Registry, registry
from django_redisjobs.worker.child_recovery import ChildRecovery, LostChild, RunningJob
from tests import jobs, process_jobs
from tests.conftest import RedisJobs
from tests.faults import redisjobs_on
from tests.polling import DEADLINE_S, wait_until
from tests.servers import RedisServer

WORKER = "host.1.abcd.0.beef"
OTHER_WORKER = "host.1.abcd.1.cafe"
LEASE_MS = 60_000
JOB_TIMEOUT = "django_redisjobs.exceptions.JobTimeout"
LOGGER = "django_redisjobs.worker.child_recovery"
GAVE_UP = "stopping without recording every lost worker process in Redis"

MakeServer = Callable[..., RedisServer]


def recovery(
    functions: Registry = registry,
    queues: tuple[str, ...] = ("default",),
    clock: Callable[[], int] = now_epoch_ms,
) -> ChildRecovery:
    return ChildRecovery(get_store(), get_settings(), functions, queues, clock)


def record(lost: LostChild, **options: Any) -> None:
    """Record `lost` through a recovery thread, then close it."""
    thread = recovery(**options)
    thread.start()
    thread.add(lost)
    thread.close(timeout_s=DEADLINE_S)


def claim(handle: JobHandle, worker_id: str = WORKER) -> None:
    (job,) = get_store().claim(handle.queue, worker_id, 1, now_epoch_ms(), LEASE_MS)
    assert isinstance(job, Job)
    assert job.id == handle.id, "the test expected another job at the queue's head"


def running(handle: JobHandle) -> RunningJob:
    """The report a worker process sends when it starts `handle`'s attempt."""
    job = handle.refresh().job
    assert job.timeout is not None
    now = time.monotonic()
    return RunningJob(
        job.id,
        job.queue,
        job.attempts,
        int(job.timeout.total_seconds() * 1000),
        now,
        now,
    )


def killed(*timed_out: RunningJob) -> LostChild:
    reason = f"Worker process {WORKER} was killed for a job past its timeout"
    return LostChild(WORKER, reason, list(timed_out), crashed=False)


def crashed(worker_id: str = WORKER) -> LostChild:
    reason = f"Worker process {worker_id} exited with code 1"
    return LostChild(worker_id, reason, [], crashed=True)


@contextmanager
def finished_signals() -> Iterator[list[dict[str, Any]]]:
    """Collect the keyword arguments of every `job_finished` sent meanwhile."""
    sent: list[dict[str, Any]] = []

    def receiver(sender: str, **kwargs: Any) -> None:
        sent.append(kwargs)

    signals.job_finished.connect(receiver)
    try:
        yield sent
    finally:
        signals.job_finished.disconnect(receiver)


def messages(caplog: pytest.LogCaptureFixture, level: int = logging.DEBUG) -> list[str]:
    return [r.getMessage() for r in list(caplog.records) if r.levelno >= level]


def test_crashed_childs_jobs_are_taken_back_at_once_with_the_attempt_counted(
    redisjobs: RedisJobs, caplog: pytest.LogCaptureFixture
) -> None:
    first, second, bystander = (jobs.add.delay(n, n) for n in range(3))
    store = redisjobs.store
    store.claim("default", WORKER, 2, now_epoch_ms(), LEASE_MS)
    claim(bystander, OTHER_WORKER)
    workers_key = keys.workers(redisjobs.prefix)
    redisjobs.client.zadd(workers_key, {WORKER: 1, OTHER_WORKER: 1})

    with caplog.at_level(logging.WARNING, LOGGER):
        record(crashed())

    for handle in (first, second):
        job = handle.refresh().job
        assert job.status is JobStatus.QUEUED
        assert (job.attempts, job.lost, job.worker) == (1, 1, "")
        assert job.error is not None
        assert job.error.exc_class == WORKER_LOST
        assert job.error.message == (
            f"Worker process {WORKER} exited with code 1 during attempt 1."
        )
        assert (
            f"recovered job from a dead worker process job id={handle.id} "
            f"queue=default worker={WORKER}"
        ) in messages(caplog)
    ready = redisjobs.client.lrange(keys.ready(redisjobs.prefix, "default"), 0, -1)
    assert sorted(ready) == sorted([first.id, second.id])
    assert bystander.refresh().status is JobStatus.ACTIVE
    assert bystander.job.worker == OTHER_WORKER
    assert redisjobs.client.zrange(workers_key, 0, -1) == [OTHER_WORKER]
    assert GAVE_UP not in caplog.text


def test_timed_out_job_is_retried_after_its_functions_backoff(
    redisjobs: RedisJobs, caplog: pytest.LogCaptureFixture
) -> None:
    handle = process_jobs.waits_with_own_backoff.delay()
    claim(handle)
    now_ms = now_epoch_ms()

    with finished_signals() as sent, caplog.at_level(logging.WARNING, LOGGER):
        record(killed(running(handle)), clock=lambda: now_ms)

    job = handle.refresh().job
    assert job.status is JobStatus.RETRYING
    assert (job.attempts, job.lost) == (1, 0)
    assert job.error is not None
    assert job.error.exc_class == JOB_TIMEOUT
    assert job.error.message == f"Job {handle.id!r} ran past its timeout of 1 s."
    scheduled = keys.scheduled(redisjobs.prefix, "default")
    # The function's 10 minutes without jitter, not the settings' 1 ms.
    assert redisjobs.client.zscore(scheduled, handle.id) == now_ms + 600_000
    assert [(s["job"].id, s["outcome"]) for s in sent] == [
        (handle.id, JobStatus.RETRYING)
    ]
    assert sent[0]["error"].exc_class == JOB_TIMEOUT
    (logged,) = [r for r in caplog.records if r.getMessage().startswith("job timed")]
    assert logged.levelno == logging.WARNING
    assert f"id={handle.id}" in logged.getMessage()
    assert "outcome=retrying" in logged.getMessage()


@pytest.mark.parametrize(
    "enqueue",
    [
        pytest.param(
            lambda: process_jobs.waits_never_retried_on_timeout.delay(),
            id="its-policy-does-not-retry-timeouts",
        ),
        pytest.param(
            lambda: process_jobs.waits_with_own_backoff.using(max_attempts=1).delay(),
            id="it-was-its-last-attempt",
        ),
    ],
)
def test_timed_out_job_is_dead_when_its_policy_allows_no_retry(
    redisjobs: RedisJobs,
    caplog: pytest.LogCaptureFixture,
    enqueue: Callable[[], JobHandle],
) -> None:
    handle = enqueue()
    claim(handle)

    with finished_signals() as sent, caplog.at_level(logging.WARNING, LOGGER):
        record(killed(running(handle)))

    job = handle.refresh().job
    assert job.status is JobStatus.DEAD
    assert (job.attempts, job.lost) == (1, 0)
    assert job.error is not None
    assert job.error.exc_class == JOB_TIMEOUT
    dead = keys.dead(redisjobs.prefix, "default")
    assert redisjobs.client.zscore(dead, handle.id) is not None
    assert [(s["job"].id, s["outcome"]) for s in sent] == [(handle.id, JobStatus.DEAD)]
    (logged,) = [r for r in caplog.records if r.getMessage().startswith("job timed")]
    assert logged.levelno == logging.ERROR
    assert "outcome=dead" in logged.getMessage()


def test_timed_out_job_of_an_unknown_function_follows_the_settings_defaults(
    redisjobs: RedisJobs,
) -> None:
    # Known, this function would end dead (no_retry_on=JobTimeout); unknown to the
    # supervisor, the defaults retry it after BACKOFF_BASE_S.
    handle = process_jobs.waits_never_retried_on_timeout.delay()
    claim(handle)
    now_ms = now_epoch_ms()
    defaults = {"BACKOFF_BASE_S": 60, "BACKOFF_MAX_S": 60, "BACKOFF_JITTER": False}

    with override_settings(REDISJOBS={**redisjobs.settings, **defaults}):
        record(killed(running(handle)), functions=Registry(), clock=lambda: now_ms)

    job = handle.refresh().job
    assert job.status is JobStatus.RETRYING
    assert job.error is not None
    assert job.error.exc_class == JOB_TIMEOUT
    scheduled = keys.scheduled(redisjobs.prefix, "default")
    assert redisjobs.client.zscore(scheduled, handle.id) == now_ms + 60_000


def recorded_by_the_child(redisjobs: RedisJobs, handle: JobHandle) -> None:
    outcome = Outcome(handle.id, "default", 1, "succeeded", ttl_ms=60_000)
    assert redisjobs.store.finish([outcome], WORKER, now_epoch_ms()) == [1]


def retried_by_another_worker(redisjobs: RedisJobs, handle: JobHandle) -> None:
    store, now_ms = redisjobs.store, now_epoch_ms()
    outcome = Outcome(handle.id, "default", 1, "retrying", ttl_ms=60_000, due_ms=now_ms)
    assert store.finish([outcome], WORKER, now_ms) == [1]
    store.promote_due("default", now_ms, 10)
    claim(handle, OTHER_WORKER)


@pytest.mark.parametrize(
    ("after_the_report", "status"),
    [
        pytest.param(recorded_by_the_child, JobStatus.SUCCEEDED, id="it-succeeded"),
        pytest.param(retried_by_another_worker, JobStatus.ACTIVE, id="next-attempt"),
    ],
)
def test_timed_out_job_that_moved_on_since_the_report_is_left_alone(
    redisjobs: RedisJobs,
    caplog: pytest.LogCaptureFixture,
    after_the_report: Callable[[RedisJobs, JobHandle], None],
    status: JobStatus,
) -> None:
    handle = process_jobs.waits_with_own_backoff.delay()
    claim(handle)
    report = running(handle)
    after_the_report(redisjobs, handle)
    before = redisjobs.client.hgetall(keys.job(redisjobs.prefix, "default", handle.id))

    with finished_signals() as sent, caplog.at_level(logging.INFO, LOGGER):
        record(killed(report))

    assert handle.refresh().status is status
    after = redisjobs.client.hgetall(keys.job(redisjobs.prefix, "default", handle.id))
    assert after == before
    assert sent == []
    assert messages(caplog) == []


def test_timed_out_job_whose_hash_is_gone_or_corrupt_does_not_stop_the_others(
    redisjobs: RedisJobs, caplog: pytest.LogCaptureFixture
) -> None:
    gone, corrupt, late = (
        process_jobs.waits_with_own_backoff.delay() for _ in range(3)
    )
    reports = []
    for handle in (gone, corrupt, late):
        claim(handle)
        reports.append(running(handle))
    client, prefix = redisjobs.client, redisjobs.prefix
    client.delete(keys.job(prefix, "default", gone.id))
    client.hset(keys.job(prefix, "default", corrupt.id), "max_attempts", "many")

    with caplog.at_level(logging.WARNING, LOGGER):
        record(killed(*reports))

    assert late.refresh().status is JobStatus.RETRYING
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in errors] == [
        f"cannot record the timeout of a corrupt job id={corrupt.id} queue=default"
    ]
    assert errors[0].exc_info is not None
    assert GAVE_UP not in caplog.text


def test_other_jobs_of_a_killed_child_go_back_to_the_head_of_their_queues_unused(
    redisjobs: RedisJobs, caplog: pytest.LogCaptureFixture
) -> None:
    late = process_jobs.waits_with_own_backoff.delay()
    neighbour = jobs.add.delay(1, 1)
    elsewhere = jobs.echo.delay("other queue")
    others = jobs.add.delay(2, 2)
    for handle in (late, neighbour, elsewhere):
        claim(handle)
    claim(others, OTHER_WORKER)
    waiting = jobs.add.delay(3, 3)

    with caplog.at_level(logging.WARNING, LOGGER):
        record(killed(running(late)), queues=("default", "other"))

    assert late.refresh().status is JobStatus.RETRYING
    for handle in (neighbour, elsewhere):
        job = handle.refresh().job
        assert job.status is JobStatus.QUEUED
        assert (job.attempts, job.lost, job.worker, job.error) == (0, 0, "", None)
        assert (
            f"job requeued after its worker process was killed job id={handle.id} "
            f"queue={handle.queue} worker={WORKER}"
        ) in messages(caplog)
    ready = redisjobs.client.lrange(keys.ready(redisjobs.prefix, "default"), 0, -1)
    assert ready == [neighbour.id, waiting.id]
    other = redisjobs.client.lrange(keys.ready(redisjobs.prefix, "other"), 0, -1)
    assert other == [elsewhere.id]
    assert others.refresh().status is JobStatus.ACTIVE
    assert others.job.worker == OTHER_WORKER


def retry_waits(caplog: pytest.LogCaptureFixture) -> list[str]:
    prefix = f"redis unavailable while recovering jobs of worker id={WORKER}, "
    return [
        m.removeprefix(prefix).partition(":")[0]
        for m in messages(caplog)
        if m.startswith(prefix)
    ]


def test_lost_child_is_recorded_once_redis_is_back_after_growing_waits(
    make_redis_server: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    server = make_redis_server(appendonly="yes", appendfsync="always")
    with redisjobs_on(server, LEASE_S=60), caplog.at_level(logging.WARNING, LOGGER):
        handle = jobs.add.delay(1, 1)
        claim(handle)
        thread = recovery()
        thread.start()
        server.kill()

        thread.add(crashed())
        wait_until(lambda: "retry in 0.4s" in retry_waits(caplog), what="3 retries")
        server.start()
        wait_until(lambda: handle.refresh().job.lost == 1, what="the recovery")
        thread.close(timeout_s=DEADLINE_S)

        assert retry_waits(caplog)[:3] == [
            "retry in 0.1s",
            "retry in 0.2s",
            "retry in 0.4s",
        ]
        assert handle.job.status is JobStatus.QUEUED
        assert handle.job.attempts == 1
        recovered = [m for m in messages(caplog) if m.startswith("recovered job")]
        assert len(recovered) == 1
        assert GAVE_UP not in caplog.text


def test_close_while_redis_is_away_gives_up_and_leaves_the_jobs_to_lease_expiry(
    make_redis_server: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    server = make_redis_server(appendonly="yes", appendfsync="always")
    with redisjobs_on(server, LEASE_S=60), caplog.at_level(logging.WARNING, LOGGER):
        handle = jobs.add.delay(1, 1)
        claim(handle)
        thread = recovery()
        thread.start()
        server.kill()
        thread.add(crashed())
        wait_until(lambda: retry_waits(caplog), what="a failed try")

        thread.close(timeout_s=DEADLINE_S)

        assert retry_waits(caplog)[-1] == "giving up"
        assert messages(caplog)[-1] == (
            f"{GAVE_UP}; their jobs return to their queues when their leases expire"
        )
        server.start()
        assert handle.refresh().status is JobStatus.ACTIVE
        assert handle.job.worker == WORKER


class FailsFor(Registry):
    """A registry whose lookup of one function fails as a bug would."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def get(self, name: str) -> FunctionSpec:
        if name == self.name:
            raise RuntimeError(f"lookup of {name!r} failed")
        return registry.get(name)


def test_unexpected_error_recording_one_child_leaves_the_thread_to_record_later_ones(
    redisjobs: RedisJobs, caplog: pytest.LogCaptureFixture
) -> None:
    late = process_jobs.waits_with_own_backoff.delay()
    claim(late)
    lost_later = jobs.add.delay(1, 1)
    claim(lost_later, OTHER_WORKER)
    thread = recovery(functions=FailsFor(process_jobs.waits_with_own_backoff.name))
    thread.start()

    with caplog.at_level(logging.WARNING, LOGGER):
        thread.add(killed(running(late)))
        failed = f"could not record lost worker process id={WORKER}"
        wait_until(lambda: failed in messages(caplog), what="the failure")
        thread.add(crashed(OTHER_WORKER))
        thread.close(timeout_s=DEADLINE_S)

    assert lost_later.refresh().status is JobStatus.QUEUED
    assert lost_later.job.lost == 1
    # Left to lease expiry: the thread does not retry what a bug stopped.
    assert late.refresh().status is JobStatus.ACTIVE
    (error,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert error.exc_info is not None
    assert GAVE_UP not in caplog.text


def test_job_finished_is_sent_once_when_redis_fails_while_recording_the_timeout(
    make_redis_server: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    server = make_redis_server(appendonly="yes", appendfsync="always")
    killed_once: list[bool] = []

    def redis_dies_now(sender: str, **kwargs: Any) -> None:
        # Between the read of the job and the write of its outcome.
        if not killed_once:
            killed_once.append(True)
            server.kill()

    with (
        redisjobs_on(server, LEASE_S=60),
        caplog.at_level(logging.WARNING, LOGGER),
        finished_signals() as sent,
    ):
        handle = process_jobs.waits_with_own_backoff.delay()
        claim(handle)
        signals.job_finished.connect(redis_dies_now)
        try:
            thread = recovery()
            thread.start()
            thread.add(killed(running(handle)))
            wait_until(lambda: retry_waits(caplog), what="a failed try")
            server.start()
            wait_until(
                lambda: handle.refresh().status is JobStatus.RETRYING,
                what="the record",
            )
            thread.close(timeout_s=DEADLINE_S)
        finally:
            signals.job_finished.disconnect(redis_dies_now)

    assert [s["outcome"] for s in sent] == [JobStatus.RETRYING]
