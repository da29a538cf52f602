"""Liveness-based recovery: leases renewed by live workers, recovered from dead ones.

Leases here are 0.3 s, so a job of 1.5 s outlives five of them; the holder renews
every 0.1 s and the other worker's scheduler looks for expired leases as often.
"""

import logging
import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.test import override_settings

from django_redisjobs import JobStatus, keys
from django_redisjobs.job import now_epoch_ms
from django_redisjobs.queue import WORKER_LOST, get_store
from django_redisjobs.scheduler import Scheduler, SchedulerConfig
from django_redisjobs.worker import Worker, WorkerConfig
from tests import fault_jobs
from tests.conftest import RedisJobs
from tests.faults import fresh_fault_jobs, running
from tests.polling import wait_until

LEASE_S = 0.3


@pytest.fixture(autouse=True)
def _fault_jobs() -> Iterator[None]:
    with fresh_fault_jobs():
        yield


@pytest.fixture
def short_lease(redisjobs: RedisJobs) -> Iterator[RedisJobs]:
    settings = {**redisjobs.settings, "LEASE_S": LEASE_S}
    with override_settings(REDISJOBS=settings):
        yield RedisJobs(redisjobs.server, redisjobs.prefix, settings)


def test_job_running_five_leases_on_a_live_worker_is_never_handed_over(
    short_lease: RedisJobs,
) -> None:
    handle = fault_jobs.sleeper.delay(5 * LEASE_S)
    holder = short_lease.worker(name="holder", concurrency=1, prefetch=0)
    holder_thread = threading.Thread(target=holder.run)
    holder_thread.start()
    wait_until(lambda: handle.refresh().status is JobStatus.ACTIVE, what="claim")
    rival = short_lease.worker(
        name="rival", burst=False, idle_wait=timedelta(seconds=0.05)
    )

    with running(rival):
        holder_thread.join(timeout=20)

    assert not holder_thread.is_alive()
    handle.refresh()
    assert fault_jobs.runs[handle.id] == 1
    assert (handle.status, handle.attempts, handle.job.lost) == (
        JobStatus.SUCCEEDED,
        1,
        0,
    )
    assert handle.job.worker == "holder"
    assert rival.stats.claimed == 0


def test_lease_nobody_renews_is_recovered_and_the_job_runs_again(
    short_lease: RedisJobs,
) -> None:
    handle = fault_jobs.quick.delay(7)
    store = short_lease.store
    (claimed,) = store.claim("default", "ghost", 1, now_epoch_ms(), 300)
    assert claimed.id == handle.id

    with running(
        short_lease.worker(
            name="rescuer", burst=False, idle_wait=timedelta(seconds=0.05)
        )
    ):
        wait_until(
            lambda: handle.refresh().status is JobStatus.SUCCEEDED, what="recovery"
        )

    assert handle.result == 7
    assert (handle.attempts, handle.job.lost, handle.job.worker) == (2, 1, "rescuer")
    assert fault_jobs.runs[handle.id] == 1
    raw = short_lease.client.hgetall(keys.job(short_lease.prefix, "default", handle.id))
    assert raw["error_class"] == WORKER_LOST
    assert (
        "Worker ghost stopped renewing its lease during attempt 1"
        in (raw["error_message"])
    )


# -- the scheduler's hold after a silence, with an injected clock ---------------

HOLD = SchedulerConfig(recover_every_ms=1, contact_gap_ms=50, recovery_hold_ms=100)


def lease_expiring_at(redisjobs: RedisJobs, deadline_ms: int) -> str:
    handle = fault_jobs.quick.delay(1)
    redisjobs.store.claim("default", "w", 1, deadline_ms - 10, 10)
    return handle.id


def status(redisjobs: RedisJobs, job_id: str) -> str:
    key = keys.job(redisjobs.prefix, "default", job_id)
    return str(redisjobs.client.hget(key, "status"))


def test_scheduler_waits_a_lease_after_its_first_contact_before_recovering(
    redisjobs: RedisJobs,
) -> None:
    job_id = lease_expiring_at(redisjobs, 500)
    scheduler = Scheduler(redisjobs.store, ["default"], HOLD)

    scheduler.note_contact(1_000)
    scheduler.tick(1_000)
    scheduler.tick(1_099)
    assert status(redisjobs, job_id) == "active"

    scheduler.tick(1_100)
    assert status(redisjobs, job_id) == "queued"


def test_scheduler_in_steady_contact_recovers_at_once(redisjobs: RedisJobs) -> None:
    job_id = lease_expiring_at(redisjobs, 500)
    scheduler = Scheduler(redisjobs.store, ["default"], HOLD)
    scheduler.note_contact(0)
    for now_ms in range(50, 1_001, 50):
        scheduler.note_contact(now_ms)

    scheduler.tick(1_000)

    assert status(redisjobs, job_id) == "queued"


def test_scheduler_waits_a_lease_after_a_silence_before_recovering(
    redisjobs: RedisJobs, caplog: pytest.LogCaptureFixture
) -> None:
    job_id = lease_expiring_at(redisjobs, 500)
    scheduler = Scheduler(redisjobs.store, ["default"], HOLD)
    scheduler.note_contact(0)
    scheduler.tick(200)  # the first hold is over; nothing has expired yet

    with caplog.at_level(logging.WARNING, "django_redisjobs.scheduler"):
        scheduler.note_contact(1_000)
    scheduler.tick(1_000)
    scheduler.tick(1_099)
    assert status(redisjobs, job_id) == "active"
    scheduler.tick(1_100)

    assert status(redisjobs, job_id) == "queued"
    assert "no contact with redis for 1000 ms" in caplog.text


def test_scheduler_config_for_a_lease_scales_recovery_and_hold() -> None:
    config = SchedulerConfig.for_lease(300)

    assert (config.recover_every_ms, config.contact_gap_ms) == (100, 150)
    assert config.recovery_hold_ms == 300
    assert SchedulerConfig.for_lease(30_000).recover_every_ms == 1_000


def test_worker_after_a_stall_waits_a_lease_before_recovering(
    redisjobs: RedisJobs,
) -> None:
    """A paused VM or a stopped process sees every lease expired when it resumes;
    the leases of workers that were paused with it must not be taken at once."""
    settings = {**redisjobs.settings, "LEASE_S": 1}
    with override_settings(REDISJOBS=settings):
        handle = fault_jobs.quick.delay(3)
        store = get_store()
        store.claim("default", "paused-too", 1, now_epoch_ms(), 3_000)
        offset_ms = 0
        worker = Worker(
            WorkerConfig(
                queues=("default",), name="w", idle_wait=timedelta(seconds=0.05)
            ),
            clock=lambda: now_epoch_ms() + offset_ms,
        )
        worker_key = keys.worker(redisjobs.prefix, "w")

        def heartbeat_ms() -> int:
            return int(store.client.hget(worker_key, "expires_ms") or 0)

        with running(worker):
            wait_until(heartbeat_ms, what="first heartbeat")
            offset_ms = 10_000  # the clock jumps, as after a 10 s stall
            wait_until(
                lambda: heartbeat_ms() > now_epoch_ms() + 10_000,
                what="a heartbeat after the stall",
            )
            # The next heartbeat comes a third of a lease later, after a scheduler
            # tick: the hold (a whole lease) still keeps the job where it is.
            first = heartbeat_ms()
            wait_until(lambda: heartbeat_ms() > first, what="the next heartbeat")
            assert handle.refresh().status is JobStatus.ACTIVE
            assert handle.job.worker == "paused-too"
            wait_until(
                lambda: handle.refresh().status is JobStatus.SUCCEEDED,
                what="recovery once the hold is over",
            )

    assert (handle.attempts, handle.job.lost, handle.job.worker) == (2, 1, "w")
