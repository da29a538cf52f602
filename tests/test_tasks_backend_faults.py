"""RedisJobsBackend under faults: a worker killed mid-task (the task completes on
another and its result lists both attempts), Redis restarted between enqueue and
get_result."""

import signal
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip(
    "django.tasks", reason="django.tasks and RedisJobsBackend need Django 6.0+"
)

from django.tasks import TaskResultStatus  # noqa: E402
from django.tasks.exceptions import TaskResultDoesNotExist  # noqa: E402

from django_redisjobs import WorkerLost  # noqa: E402
from django_redisjobs.job import now_epoch_ms  # noqa: E402
from tests import django_tasks as t  # noqa: E402
from tests.conftest import RedisJobs  # noqa: E402
from tests.faults import redisjobs_on  # noqa: E402
from tests.polling import wait_until  # noqa: E402
from tests.test_runworker import (  # noqa: E402, F401 - the fixture
    StartWorker,
    start_worker,
    worker_settings,
)

LEASE_MS = 60_000


def test_task_of_a_lost_worker_completes_on_another(redisjobs: RedisJobs) -> None:
    result = t.context_seen.enqueue("again")
    store = redisjobs.store
    now = now_epoch_ms()
    (claimed,) = store.claim("default", "w-dead", 1, now, LEASE_MS)
    assert t.context_seen.get_result(result.id).status == TaskResultStatus.RUNNING
    assert t.context_seen.get_result(result.id).worker_ids == ["w-dead"]

    store.recover_worker("default", "w-dead", "Worker w-dead was killed", now)
    between = t.context_seen.get_result(result.id)
    redisjobs.run_worker(name="w-live")
    t.reset()

    assert between.status == TaskResultStatus.READY
    assert between.worker_ids == ["w-dead"]
    done = t.context_seen.get_result(result.id)
    assert done.status == TaskResultStatus.SUCCESSFUL
    assert done.worker_ids == ["w-dead", "w-live"]
    assert done.attempts == 2
    # The task's context counted the lost attempt.
    assert done.return_value == [
        "again",
        2,
        TaskResultStatus.RUNNING,
        ["w-dead", "w-live"],
        True,
        True,
    ]
    (error,) = done.errors
    assert error.exception_class is WorkerLost
    assert "Worker w-dead was killed during attempt 1." in error.traceback
    assert done.started_at == claimed.started_at
    assert done.last_attempted_at is not None and done.started_at is not None
    assert done.last_attempted_at >= done.started_at


@pytest.mark.slow
def test_task_of_a_killed_worker_process_completes_elsewhere(
    redisjobs: RedisJobs,
    start_worker: StartWorker,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    settings = worker_settings(
        redisjobs, LEASE_S=1.0, AUTODISCOVER_MODULES=["tasks", "django_tasks"]
    )
    out, release = tmp_path / "out", tmp_path / "release"
    result = t.touch_when_released.enqueue(str(out), str(release))
    first = start_worker("--name", "w-killed", settings=settings)
    wait_until(
        lambda: (
            t.touch_when_released.get_result(result.id).status
            == TaskResultStatus.RUNNING
        ),
        what="the task to run in the first worker",
    )
    second = start_worker("--name", "w-next", "--max-jobs", "1", settings=settings)
    wait_until(lambda: "worker started" in second.stderr, what="second worker start")

    first.send_signal(signal.SIGKILL)
    assert first.wait() == -signal.SIGKILL
    release.touch()
    assert second.wait() == 0, second.stderr

    done = t.touch_when_released.get_result(result.id)
    assert done.status == TaskResultStatus.SUCCESSFUL
    assert done.worker_ids == ["w-killed", "w-next"]
    assert done.return_value == 2
    assert out.read_text() == f"2 {second.pid}\n"
    assert [e.exception_class for e in done.errors] == [WorkerLost]


def test_result_survives_a_redis_restart_with_aof(make_redis_server: Any) -> None:
    server = make_redis_server(appendonly="yes", appendfsync="always")
    with redisjobs_on(server) as redisjobs:
        result = t.meaning_of_life.enqueue()
        server.restart()
        assert t.meaning_of_life.get_result(result.id) == result
        redisjobs.run_worker(name="w-after")
        server.restart()
        done = t.meaning_of_life.get_result(result.id)
    assert done.status == TaskResultStatus.SUCCESSFUL
    assert done.return_value == 42
    assert done.worker_ids == ["w-after"]


def test_result_lost_with_redis_data_does_not_exist(make_redis_server: Any) -> None:
    """Without persistence a restart loses the job: get_result says so, with
    Django's exception, not a redis-py error."""
    server = make_redis_server()
    with redisjobs_on(server):
        result = t.meaning_of_life.enqueue()
        server.restart()
        with pytest.raises(TaskResultDoesNotExist, match=result.id):
            t.meaning_of_life.get_result(result.id)


def test_worker_keeps_going_across_a_restart(make_redis_server: Any) -> None:
    server = make_redis_server(appendonly="yes", appendfsync="always")
    with redisjobs_on(server) as redisjobs:
        results = [t.record.enqueue(str(n)) for n in range(3)]
        server.restart()
        redisjobs.run_worker()
        statuses = {t.record.get_result(r.id).status for r in results}
    t.reset()
    assert statuses == {TaskResultStatus.SUCCESSFUL}
