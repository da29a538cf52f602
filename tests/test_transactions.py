"""Commit-aware enqueue against real SQLite and PostgreSQL transactions."""

import logging
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.test import override_settings

from django_redisjobs import JobStatus, SerializationError, keys
from django_redisjobs.job import now_epoch_ms, to_ms
from tests import db_jobs, jobs
from tests.polling import wait_until

DATABASES = ["default", "postgres"]
pytestmark = pytest.mark.django_db(transaction=True, databases=DATABASES)


def queued(redisjobs: Any) -> int:
    return int(redisjobs.store.counts("default")["queued"])


@pytest.fixture(params=DATABASES)
def alias(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_enqueue_inside_atomic_waits_for_commit(redisjobs: Any, alias: str) -> None:
    with transaction.atomic(using=alias):
        handle = jobs.add.enqueue(args=[1, 2], using=alias)
        assert handle.status is JobStatus.PENDING
        assert handle.refresh().status is JobStatus.PENDING
        assert queued(redisjobs) == 0

    assert queued(redisjobs) == 1
    assert handle.status is JobStatus.QUEUED
    assert handle.refresh().status is JobStatus.QUEUED


def test_enqueue_inside_atomic_is_dropped_on_rollback(
    redisjobs: Any, alias: str
) -> None:
    class Abort(Exception):
        pass

    with pytest.raises(Abort), transaction.atomic(using=alias):
        handle = jobs.add.enqueue(args=[1, 2], using=alias)
        raise Abort

    assert queued(redisjobs) == 0
    assert handle.status is JobStatus.PENDING
    assert redisjobs.store.known_queues() == []


def test_rolled_back_savepoint_drops_only_its_jobs(redisjobs: Any, alias: str) -> None:
    with transaction.atomic(using=alias):
        kept = jobs.add.enqueue(args=[1, 1], using=alias)
        try:
            with transaction.atomic(using=alias):
                dropped = jobs.add.enqueue(args=[2, 2], using=alias)
                raise ValueError("roll back the savepoint")
        except ValueError:
            pass

    assert kept.refresh().status is JobStatus.QUEUED
    assert dropped.status is JobStatus.PENDING
    assert queued(redisjobs) == 1


def test_worker_sees_rows_written_in_the_enqueuing_transaction(
    redisjobs: Any, alias: str
) -> None:
    with transaction.atomic(using=alias):
        User.objects.db_manager(alias).create_user("ada")
        handle = db_jobs.user_exists.enqueue(args=["ada", alias], using=alias)

    redisjobs.run_worker()

    assert handle.refresh().result is True


def test_transaction_on_another_database_does_not_defer(redisjobs: Any) -> None:
    with transaction.atomic(using="postgres"):
        handle = jobs.add.delay(1, 2)  # follows "default", which is not in atomic
        assert handle.status is JobStatus.QUEUED
        assert queued(redisjobs) == 1


def test_on_commit_false_writes_at_once_inside_atomic(redisjobs: Any) -> None:
    with transaction.atomic():
        handle = jobs.add.enqueue(args=[1, 2], on_commit=False)
        assert queued(redisjobs) == 1
    assert handle.status is JobStatus.QUEUED


def test_on_commit_setting_off_writes_at_once(redisjobs: Any) -> None:
    no_defer = {**redisjobs.settings, "ON_COMMIT": False}
    with override_settings(REDISJOBS=no_defer), transaction.atomic():
        jobs.add.delay(1, 2)
        assert queued(redisjobs) == 1


def test_enqueue_many_inside_atomic_writes_all_on_commit(redisjobs: Any) -> None:
    with transaction.atomic():
        handles = jobs.add.enqueue_many([((i, i), {}) for i in range(10)])
        assert queued(redisjobs) == 0
    assert queued(redisjobs) == 10
    assert {h.status for h in handles} == {JobStatus.QUEUED}


def test_redis_down_at_commit_logs_the_job_for_replay(
    caplog: pytest.LogCaptureFixture,
) -> None:
    down = {"REDIS_URL": "redis://127.0.0.1:1/0", "PREFIX": "down"}
    with override_settings(REDISJOBS=down), caplog.at_level(logging.ERROR):
        with transaction.atomic():
            User.objects.create_user("grace")
            handle = jobs.add.delay(40, 2)
        # The commit went through; only the job could not be stored.
        assert User.objects.filter(username="grace").exists()

    record = next(
        r for r in caplog.records if "enqueue after commit failed" in r.message
    )
    assert handle.id in record.message
    assert "func=tests.jobs.add" in record.message
    assert "args=[40,2]" in record.message
    assert record.exc_info is not None
    assert handle.status is JobStatus.PENDING


def test_eager_mode_inside_atomic_runs_after_commit(redisjobs: Any) -> None:
    eager = {**redisjobs.settings, "EAGER": True}
    with override_settings(REDISJOBS=eager):
        with transaction.atomic():
            User.objects.create_user("linus")
            handle = db_jobs.user_exists.delay("linus")
            assert handle.status is JobStatus.PENDING
        assert handle.status is JobStatus.SUCCEEDED
        assert handle.result is True


def test_an_argument_utf8_cannot_carry_is_refused_at_delay_inside_atomic(
    redisjobs: Any,
) -> None:
    with transaction.atomic():
        with pytest.raises(SerializationError, match="lone surrogate"):
            jobs.echo.delay("bad \udcff")
        good = jobs.add.delay(1, 2)
    assert good.refresh().status is JobStatus.QUEUED


def test_a_write_that_fails_at_commit_skips_no_other_job_or_callback(
    redisjobs: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # A ready list that is not a list: Redis refuses the first job's write.
    redisjobs.client.set(keys.ready(redisjobs.prefix, "other"), "not a list")
    ran: list[str] = []
    with caplog.at_level(logging.ERROR), transaction.atomic():
        refused = jobs.echo.delay("x")  # queue "other"
        stored = jobs.add.delay(1, 2)
        transaction.on_commit(lambda: ran.append("callback"))
    assert ran == ["callback"]
    assert stored.refresh().status is JobStatus.QUEUED
    assert refused.status is JobStatus.PENDING
    assert any(refused.id in r.message for r in caplog.records)


def test_a_delay_that_passes_before_the_commit_gives_a_queued_handle(
    redisjobs: Any,
) -> None:
    with transaction.atomic():
        handle = jobs.add.enqueue(args=[1, 2], delay=timedelta(milliseconds=20))
        assert handle.job.run_at is not None
        # The commit comes after the job's time: the script stores it ready.
        wait_until(lambda: now_epoch_ms() > to_ms(handle.job.run_at) + 5)
    assert handle.status is JobStatus.QUEUED
    assert handle.refresh().status is JobStatus.QUEUED


def test_a_delay_still_ahead_at_the_commit_gives_a_scheduled_handle(
    redisjobs: Any,
) -> None:
    with transaction.atomic():
        handle = jobs.add.enqueue(args=[1, 2], delay=timedelta(hours=1))
    assert handle.status is JobStatus.SCHEDULED
    assert handle.refresh().status is JobStatus.SCHEDULED
