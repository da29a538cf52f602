"""RedisJobsBackend against a real worker and Redis: what Django's tests/tasks
expect of a backend (enqueue, results, errors, context, async tasks, priority,
run_after, signals), and the result fields exact after retries."""

import asyncio
import dataclasses
import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

pytest.importorskip(
    "django.tasks", reason="django.tasks and RedisJobsBackend need Django 6.0+"
)

from django.tasks import (  # noqa: E402
    TaskResultStatus,
    default_task_backend,
    task_backends,
)
from django.tasks.exceptions import (  # noqa: E402
    TaskResultDoesNotExist,
    TaskResultMismatch,
)
from django.tasks.signals import (  # noqa: E402
    task_enqueued,
    task_finished,
    task_started,
)
from django.utils import timezone  # noqa: E402

from django_redisjobs import JobStatus, keys, signals  # noqa: E402
from django_redisjobs.job import from_ms, now_epoch_ms, to_ms  # noqa: E402
from django_redisjobs.tasks_backend import RedisJobsBackend  # noqa: E402
from tests import django_tasks as t  # noqa: E402
from tests import jobs  # noqa: E402


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    t.reset()
    yield
    t.reset()


def test_backend_claims_every_capability() -> None:
    backend = task_backends["default"]
    assert isinstance(backend, RedisJobsBackend)
    assert backend.supports_defer is True
    assert backend.supports_async_task is True
    assert backend.supports_get_result is True
    assert backend.supports_priority is True
    assert backend.options == {}
    assert backend.queues == {"default", "other"}


def test_enqueue_stores_a_job_and_returns_a_ready_result(redisjobs: Any) -> None:
    result = t.noop.enqueue((1, 2), b"three", four={"five": (5,)})

    assert result.status == TaskResultStatus.READY
    assert result.is_finished is False
    assert result.task == t.noop
    assert result.backend == "default"
    assert result.args == [[1, 2], "three"]
    assert result.kwargs == {"four": {"five": [5]}}
    assert result.enqueued_at is not None
    assert result.started_at is None
    assert result.last_attempted_at is None
    assert result.finished_at is None
    assert result.errors == []
    assert result.worker_ids == []
    assert result.attempts == 0
    with pytest.raises(ValueError, match="Task has not finished yet"):
        _ = result.return_value
    job = redisjobs.store.get(result.id, "default")
    assert job.func == "tests.django_tasks.noop"
    assert job.status is JobStatus.QUEUED
    assert job.args == [[1, 2], "three"]


def test_enqueue_refuses_arguments_django_cannot_normalise(redisjobs: Any) -> None:
    with pytest.raises(TypeError, match="Unsupported type"):
        t.noop.enqueue(timezone.now())
    with pytest.raises(TypeError, match="Unsupported type"):
        asyncio.run(t.noop.aenqueue(object()))
    assert redisjobs.store.counts("default")["queued"] == 0


def test_aenqueue_stores_the_job_like_enqueue(redisjobs: Any) -> None:
    result = asyncio.run(t.echo.aenqueue(1, two=(2,)))
    assert result.status == TaskResultStatus.READY
    assert (result.args, result.kwargs) == ([1], {"two": [2]})
    redisjobs.run_worker()
    assert t.echo.get_result(result.id).return_value == [[1], {"two": [2]}]


def test_get_result_reads_back_what_enqueue_returned(redisjobs: Any) -> None:
    result = default_task_backend.enqueue(t.noop, (1,), {"a": [2]})

    assert default_task_backend.get_result(result.id) == result
    assert t.noop.get_result(result.id) == result
    assert asyncio.run(t.noop.aget_result(result.id)) == result
    before = dataclasses.asdict(result)
    result.refresh()
    assert dataclasses.asdict(result) == before


def test_get_result_of_another_task_is_a_mismatch(redisjobs: Any) -> None:
    result = t.noop_async.enqueue()
    with pytest.raises(TaskResultMismatch, match="Task does not match"):
        t.noop.get_result(result.id)
    with pytest.raises(TaskResultMismatch):
        asyncio.run(t.noop.aget_result(result.id))


def test_unknown_id_does_not_exist(redisjobs: Any) -> None:
    with pytest.raises(TaskResultDoesNotExist, match="No task result with id '123'"):
        t.noop.get_result("123")
    with pytest.raises(TaskResultDoesNotExist):
        asyncio.run(default_task_backend.aget_result(123))  # type: ignore[arg-type]  # Django's tests pass an int


def test_id_of_a_background_job_is_not_a_task_result(redisjobs: Any) -> None:
    handle = jobs.add.delay(1, 2)
    with pytest.raises(TaskResultDoesNotExist, match="not of a django.tasks task"):
        default_task_backend.get_result(handle.id)


def test_worker_runs_the_task_and_the_result_says_so(redisjobs: Any) -> None:
    result = t.meaning_of_life.enqueue()

    redisjobs.run_worker(name="w-one")

    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.is_finished is True
    assert result.return_value == 42
    assert result.worker_ids == ["w-one"]
    assert result.attempts == 1
    assert result.errors == []
    assert result.enqueued_at is not None and result.started_at is not None
    assert result.finished_at is not None and result.last_attempted_at is not None
    assert result.started_at >= result.enqueued_at
    assert result.last_attempted_at == result.started_at
    assert result.finished_at >= result.started_at


def test_return_value_is_normalised_like_djangos(redisjobs: Any) -> None:
    result = t.returns_tuple_and_bytes.enqueue()
    redisjobs.run_worker()
    assert t.returns_tuple_and_bytes.get_result(result.id).return_value == [
        1,
        "two",
        {"three": [3]},
    ]


def test_async_task_runs_on_the_workers_event_loop(redisjobs: Any) -> None:
    result = t.where_async.enqueue("a")
    noop = t.noop_async.enqueue()

    redisjobs.run_worker()

    assert t.ran == [("a", "redisjobs-async")]
    assert t.where_async.get_result(result.id).return_value == "a"
    assert t.noop_async.get_result(noop.id).status == TaskResultStatus.SUCCESSFUL


@pytest.mark.parametrize(
    ("task", "exception", "ending"),
    [
        (t.fails, ValueError, "ValueError: This Task failed due to ValueError\n"),
        (t.exits, SystemExit, "SystemExit: This task failed due to SystemExit\n"),
        (t.complex_exception, ValueError, 'ValueError(ValueError("This task failed"))'),
        (t.returns_object, TypeError, None),
    ],
)
def test_a_failing_task_ends_failed_with_its_error(
    redisjobs: Any, task: Any, exception: type[BaseException], ending: str | None
) -> None:
    args = ["This Task failed due to ValueError"] if task is t.fails else []
    result = task.using(backend="once").enqueue(*args)

    redisjobs.run_worker(name="w-fail")

    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    with pytest.raises(ValueError, match="Task failed"):
        _ = result.return_value
    assert result.finished_at is not None and result.started_at is not None
    assert result.worker_ids == ["w-fail"]
    (error,) = result.errors
    assert error.exception_class is exception
    if task is t.complex_exception:
        assert ending in error.traceback
    elif ending is None:
        assert "Unsupported type" in error.traceback
    else:
        assert error.traceback.endswith(ending), error.traceback


def test_retries_give_one_worker_id_and_one_error_per_attempt(redisjobs: Any) -> None:
    result = t.flaky.enqueue(2)

    redisjobs.run_worker(name="w-retry")

    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 3  # the context said attempt 3
    assert result.worker_ids == ["w-retry"] * 3
    assert result.attempts == 3
    assert [e.exception_class for e in result.errors] == [ConnectionError] * 2
    assert result.errors[0].traceback == "builtins.ConnectionError: attempt 1 failed\n"
    assert result.errors[1].traceback.endswith("ConnectionError: attempt 2 failed\n")
    assert "Traceback (most recent call last)" in result.errors[1].traceback
    job = redisjobs.store.get(result.id, "default")
    assert result.started_at == job.history[0].started_at
    assert result.last_attempted_at == job.history[-1].started_at
    assert result.started_at is not None and result.last_attempted_at is not None
    assert result.started_at < result.last_attempted_at


def test_async_task_is_retried_too(redisjobs: Any) -> None:
    result = t.flaky_async.enqueue(1)
    redisjobs.run_worker()
    result.refresh()
    assert (result.status, result.return_value, result.attempts) == (
        TaskResultStatus.SUCCESSFUL,
        2,
        2,
    )


def test_out_of_attempts_the_task_fails_with_every_error(redisjobs: Any) -> None:
    result = t.flaky.enqueue(5)  # more failures than MAX_ATTEMPTS (3)
    redisjobs.run_worker()
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert result.attempts == 3
    assert len(result.errors) == 3


def test_takes_context_gets_the_running_result(redisjobs: Any) -> None:
    result = t.task_id.enqueue()
    seen = t.context_seen.enqueue("x")

    redisjobs.run_worker(name="w-ctx")

    assert t.task_id.get_result(result.id).return_value == result.id
    assert t.ran == [["x", 1, TaskResultStatus.RUNNING, ["w-ctx"], True, True]]
    assert t.context_seen.get_result(seen.id).return_value[1] == 1


def test_worker_runs_higher_priorities_first_fifo_within_one(redisjobs: Any) -> None:
    for label, priority in [
        ("zero", 0),
        ("low", -100),
        ("top", 100),
        ("fifty-a", 50),
        ("minus", -1),
        ("fifty-b", 50),
    ]:
        t.record.using(priority=priority).enqueue(label)

    redisjobs.run_worker(concurrency=1, prefetch=0)

    assert t.ran == ["top", "fifty-a", "fifty-b", "zero", "minus", "low"]


def test_run_after_defers_the_task(redisjobs: Any) -> None:
    later = timezone.now() + timedelta(hours=1)
    result = t.record.using(run_after=later).enqueue("deferred")
    now = t.record.enqueue("now")

    redisjobs.run_worker()

    assert t.ran == ["now"]
    read = t.record.get_result(result.id)
    assert read.status == TaskResultStatus.READY
    assert read.enqueued_at == result.enqueued_at is not None
    assert read.task.run_after == from_ms(to_ms(later))  # kept to the ms
    scheduled = keys.scheduled(redisjobs.prefix, "default")
    assert redisjobs.client.zscore(scheduled, result.id) is not None
    # An hour later, by the store's clock:
    redisjobs.store.promote_due("default", now_epoch_ms() + 3_600_001, 10)
    redisjobs.run_worker()
    assert t.ran == ["now", "deferred"]
    assert t.record.get_result(result.id).return_value == "deferred"
    assert t.record.get_result(now.id).task.run_after is None


def test_run_after_in_the_past_runs_at_once(redisjobs: Any) -> None:
    result = t.record.using(run_after=timezone.now() - timedelta(days=1)).enqueue("p")
    assert result.status == TaskResultStatus.READY
    redisjobs.run_worker()
    assert t.record.get_result(result.id).status == TaskResultStatus.SUCCESSFUL


def test_signals_carry_the_backend_class_and_each_status(redisjobs: Any) -> None:
    seen: list[tuple[str, Any, str, bool]] = []
    ours: list[str] = []

    def receiver(signal_name: str) -> Any:
        def receive(sender: Any, task_result: Any, **kwargs: Any) -> None:
            import sys

            in_handler = sys.exc_info()[0] is not None
            seen.append((signal_name, sender, task_result.status, in_handler))

        return receive

    receivers = {
        task_enqueued: receiver("enqueued"),
        task_started: receiver("started"),
        task_finished: receiver("finished"),
    }
    for signal, receive in receivers.items():
        signal.connect(receive)

    def on_ours(sender: Any, job: Any, **kwargs: Any) -> None:
        ours.append(f"{sender}:{job.status}")

    for signal in (signals.job_enqueued, signals.job_started, signals.job_finished):
        signal.connect(on_ours)
    try:
        ok = t.meaning_of_life.enqueue()
        redisjobs.run_worker(concurrency=1)
        failed = t.fails.using(backend="once").enqueue("boom")
        redisjobs.run_worker(concurrency=1)
    finally:
        for signal, receive in receivers.items():
            signal.disconnect(receive)
        for signal in (signals.job_enqueued, signals.job_started, signals.job_finished):
            signal.disconnect(on_ours)

    assert seen == [
        ("enqueued", RedisJobsBackend, TaskResultStatus.READY, False),
        ("started", RedisJobsBackend, TaskResultStatus.RUNNING, False),
        ("finished", RedisJobsBackend, TaskResultStatus.SUCCESSFUL, False),
        ("enqueued", RedisJobsBackend, TaskResultStatus.READY, False),
        ("started", RedisJobsBackend, TaskResultStatus.RUNNING, False),
        ("finished", RedisJobsBackend, TaskResultStatus.FAILED, True),
    ]
    assert ours == [
        "tests.django_tasks.meaning_of_life:queued",
        "tests.django_tasks.meaning_of_life:active",
        "tests.django_tasks.meaning_of_life:active",
        "tests.django_tasks.fails:queued",
        "tests.django_tasks.fails:active",
        "tests.django_tasks.fails:active",
    ]
    assert ok.id != failed.id


def test_a_retried_attempt_finishes_as_ready(redisjobs: Any) -> None:
    statuses: list[str] = []

    def receive(sender: Any, task_result: Any, **kwargs: Any) -> None:
        statuses.append(task_result.status)

    task_finished.connect(receive)
    try:
        t.flaky.enqueue(1)
        redisjobs.run_worker()
    finally:
        task_finished.disconnect(receive)
    assert statuses == [TaskResultStatus.READY, TaskResultStatus.SUCCESSFUL]


def test_djangos_task_logging_works(
    redisjobs: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="django.tasks"):
        ok = t.noop.enqueue()
        failed = t.fails.using(backend="once").enqueue("This task failed")
        redisjobs.run_worker(concurrency=1)

    lines = [
        (r.levelname, r.getMessage(), r.exc_info is not None)
        for r in caplog.records
        if r.name == "django.tasks"
    ]
    path = "tests.django_tasks"
    assert lines == [
        ("DEBUG", f"Task id={ok.id} path={path}.noop enqueued backend=default", False),
        (
            "DEBUG",
            f"Task id={failed.id} path={path}.fails enqueued backend=once",
            False,
        ),
        ("INFO", f"Task id={ok.id} path={path}.noop state=RUNNING", False),
        ("INFO", f"Task id={ok.id} path={path}.noop state=SUCCESSFUL", False),
        ("INFO", f"Task id={failed.id} path={path}.fails state=RUNNING", False),
        ("ERROR", f"Task id={failed.id} path={path}.fails state=FAILED", True),
    ]
    error = next(r for r in caplog.records if r.levelname == "ERROR")
    assert error.exc_info is not None and error.exc_info[0] is ValueError


def test_task_and_background_jobs_share_queue_and_worker(redisjobs: Any) -> None:
    result = t.record.enqueue("task")
    handle = jobs.add.delay(2, 3)

    redisjobs.run_worker(concurrency=1)

    assert t.ran == ["task"]
    assert handle.refresh().result == 5
    assert t.record.get_result(result.id).return_value == "task"
