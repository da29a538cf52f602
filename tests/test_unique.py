"""Unique jobs end to end: keys from arguments or given, windows, races,
transactions and eager mode."""

import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.test import override_settings

from django_redisjobs import InvalidJob, JobHandle, JobStatus, keys, signals
from django_redisjobs.job import to_ms
from tests import queueing_jobs
from tests.queueing_jobs import plain, refresh_feed, send_digest


@pytest.fixture(autouse=True)
def _reset_jobs() -> Iterator[None]:
    queueing_jobs.reset()
    yield
    queueing_jobs.reset()


def job_ids(redisjobs: Any, queue: str = "default") -> list[str]:
    """Every job hash of the queue, found by a bounded SCAN (fine in a test)."""
    pattern = keys.job(redisjobs.prefix, queue, "*")
    prefix = keys.job_prefix(redisjobs.prefix, queue)
    return sorted(k[len(prefix) :] for k in redisjobs.client.scan_iter(pattern))


def test_unique_function_returns_the_waiting_job_for_the_same_arguments(
    redisjobs: Any,
) -> None:
    first = refresh_feed.delay(7)
    again = refresh_feed.delay(7)
    other = refresh_feed.delay(8)

    assert again.id == first.id
    assert again.status is JobStatus.QUEUED
    assert other.id != first.id
    assert job_ids(redisjobs) == sorted([first.id, other.id])
    assert first.job.unique_key.startswith("tests.queueing_jobs.refresh_feed:")


def test_arguments_key_binds_arguments_to_parameter_names(redisjobs: Any) -> None:
    first = refresh_feed.delay(7, full=False)

    assert refresh_feed.delay(feed_id=7, full=False).id == first.id
    assert refresh_feed.enqueue(kwargs={"full": False, "feed_id": 7}).id == first.id
    assert refresh_feed.delay(7, full=True).id != first.id
    # A default left out is not part of the key.
    assert refresh_feed.delay(7).id != first.id


def test_arguments_that_do_not_fit_the_signature_are_rejected(redisjobs: Any) -> None:
    with pytest.raises(
        InvalidJob, match=r"do not fit tests.queueing_jobs.refresh_feed"
    ):
        refresh_feed.enqueue(args=[1, 2, 3])


def test_unique_key_given_per_call_is_shared_by_any_arguments(redisjobs: Any) -> None:
    first = plain.enqueue(args=["a"], unique_key="nightly-report")
    again = plain.enqueue(args=["b"], unique_key="nightly-report")

    assert again.id == first.id
    assert again.job.args == ["a"]
    assert plain.enqueue(args=["a"]).id != first.id  # not unique without a key
    lock = keys.unique(redisjobs.prefix, "default", "nightly-report")
    assert redisjobs.client.get(lock) == first.id


def test_unique_per_call_on_a_plain_function(redisjobs: Any) -> None:
    first = plain.enqueue(args=[1], unique=True)
    assert plain.enqueue(args=[1], unique=True).id == first.id
    assert plain.enqueue(args=[1]).id != first.id


def test_unique_false_per_call_turns_off_the_functions_uniqueness(
    redisjobs: Any,
) -> None:
    first = refresh_feed.delay(1)
    second = refresh_feed.enqueue(args=[1], unique=False)
    assert second.id != first.id
    assert second.job.unique_key == ""


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"unique_key": ""}, "unique_key '' is not valid"),
        ({"unique_key": "x" * 201}, "at most 200 characters"),
        ({"unique_key": "k", "unique": False}, "together with unique=False"),
        ({"unique_for": timedelta(0)}, "unique_for is .*; use a positive timedelta"),
    ],
)
def test_bad_unique_options_are_rejected(
    redisjobs: Any, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidJob, match=message):
        plain.enqueue(args=[1], **options)


def test_key_is_free_again_once_the_job_ran(redisjobs: Any) -> None:
    first = refresh_feed.delay(7)
    redisjobs.run_worker()
    assert first.refresh().status is JobStatus.SUCCEEDED

    second = refresh_feed.delay(7)

    assert second.id != first.id
    assert second.status is JobStatus.QUEUED


def test_scheduled_job_holds_its_key_until_it_has_run(redisjobs: Any) -> None:
    first = refresh_feed.enqueue(args=[7], delay=timedelta(hours=1))
    again = refresh_feed.enqueue(args=[7])

    assert again.id == first.id
    assert again.status is JobStatus.SCHEDULED


def test_unique_for_keeps_returning_the_ended_job_within_its_window(
    redisjobs: Any,
) -> None:
    first = send_digest.delay(3)  # unique_for=1 h implies unique
    redisjobs.run_worker()
    assert queueing_jobs.ran == ["digest 3"]

    again = send_digest.delay(3)

    assert again.id == first.id
    assert again.status is JobStatus.SUCCEEDED
    assert again.result == 3
    assert first.job.unique_until is not None
    lock = keys.unique(redisjobs.prefix, "default", first.job.unique_key)
    assert redisjobs.client.pexpiretime(lock) == to_ms(first.job.unique_until)
    redisjobs.run_worker()
    assert queueing_jobs.ran == ["digest 3"]


def test_unique_for_per_call_sets_the_window(redisjobs: Any) -> None:
    handle = plain.enqueue(args=[1], unique_for=timedelta(minutes=5))
    assert handle.job.unique_key.startswith("tests.queueing_jobs.plain:")
    assert handle.job.unique_until is not None
    assert handle.job.enqueued_at is not None
    assert handle.job.unique_until - handle.job.enqueued_at == timedelta(minutes=5)


def test_cancelling_the_holder_frees_its_key(redisjobs: Any) -> None:
    first = refresh_feed.delay(7)
    assert first.cancel()
    assert refresh_feed.delay(7).id != first.id


def test_enqueue_many_stores_one_job_per_key(redisjobs: Any) -> None:
    handles = refresh_feed.enqueue_many([((1,), {}), ((2,), {}), ((1,), {})])

    assert handles[2].id == handles[0].id
    assert len(job_ids(redisjobs)) == 2


def test_duplicate_sends_no_job_enqueued_signal(redisjobs: Any) -> None:
    seen: list[str] = []

    def receiver(sender: str, job: Any, **kwargs: Any) -> None:
        seen.append(job.id)

    signals.job_enqueued.connect(receiver)
    try:
        first = refresh_feed.delay(7)
        refresh_feed.delay(7)
    finally:
        signals.job_enqueued.disconnect(receiver)
    assert seen == [first.id]


def test_racing_enqueues_store_exactly_one_job(redisjobs: Any) -> None:
    threads_n = 16
    barrier = threading.Barrier(threads_n)
    handles: list[JobHandle] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def enqueue() -> None:
        try:
            barrier.wait(10)
            handle = refresh_feed.delay(42)
            with lock:
                handles.append(handle)
        except BaseException as err:  # reported below, not lost in the thread
            errors.append(err)

    threads = [threading.Thread(target=enqueue) for _ in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)

    assert errors == []
    assert len(handles) == threads_n
    assert len({h.id for h in handles}) == 1
    assert job_ids(redisjobs) == [handles[0].id]
    assert redisjobs.store.counts("default")["queued"] == 1
    redisjobs.run_worker()
    assert queueing_jobs.ran == ["feed 42"]


@pytest.mark.django_db(transaction=True)
def test_in_a_transaction_the_key_is_checked_at_commit(redisjobs: Any) -> None:
    waiting = refresh_feed.delay(7)
    with transaction.atomic():
        pending = refresh_feed.delay(7)
        also_pending = refresh_feed.delay(8)
        assert pending.status is JobStatus.PENDING
        assert pending.id != waiting.id

    # At commit the key was held: the handle now names the job that holds it.
    assert pending.id == waiting.id
    assert pending.status is JobStatus.QUEUED
    assert also_pending.status is JobStatus.QUEUED
    assert job_ids(redisjobs) == sorted([waiting.id, also_pending.id])


@pytest.mark.django_db(transaction=True)
def test_rolled_back_unique_enqueue_takes_no_key(redisjobs: Any) -> None:
    class Abort(Exception):
        pass

    with pytest.raises(Abort), transaction.atomic():
        refresh_feed.delay(7)
        raise Abort

    assert job_ids(redisjobs) == []
    assert refresh_feed.delay(7).status is JobStatus.QUEUED


def test_eager_mode_runs_every_call_of_a_unique_function() -> None:
    settings = {"REDIS_URL": "redis://127.0.0.1:1/0", "EAGER": True}
    with override_settings(REDISJOBS=settings):
        first = send_digest.delay(1)
        second = send_digest.delay(1)
    assert first.id != second.id
    assert first.result == second.result == 1
    assert queueing_jobs.ran == ["digest 1", "digest 1"]
