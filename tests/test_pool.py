"""The executor pool's hand-over: work given to a waiting thread, and the job that
thread then runs itself."""

import threading
from collections.abc import Iterator

import pytest

from django_redisjobs.conf import get_settings
from django_redisjobs.execution import AttemptResult
from django_redisjobs.job import Job, JobStatus
from django_redisjobs.registry import registry
from django_redisjobs.worker.claim import Handover, Prefetch
from django_redisjobs.worker.ledger import Ledger
from django_redisjobs.worker.run import ExecutorPool
from django_redisjobs.worker.supervision import StopSignal, ThreadSupervisor
from tests import jobs
from tests.conftest import RedisJobs
from tests.polling import wait_until

LEDGER = Ledger()
SPAWN = ThreadSupervisor("test", StopSignal()).spawn


@pytest.fixture
def pool(redisjobs: RedisJobs) -> Iterator[tuple[ExecutorPool, list[AttemptResult]]]:
    results: list[AttemptResult] = []
    pool = ExecutorPool(
        1,
        get_settings(),
        redisjobs.store,
        LEDGER,
        results.append,
        lambda: None,
        Prefetch(1, 0),
    )
    yield pool, results
    pool.stop()


def echo_job(value: str) -> Job:
    """A job entered in the ledger, as a claim would."""
    job = Job(id=value, func=jobs.echo.name, queue="default", args=[value])
    LEDGER.claimed([job], 1)
    return job


def test_run_here_refuses_when_no_thread_waits(
    pool: tuple[ExecutorPool, list[AttemptResult]],
) -> None:
    executor, _ = pool
    assert executor.run_here(lambda: None) is False  # threads not started


def test_task_runs_on_a_waiting_thread_which_then_runs_its_job(
    pool: tuple[ExecutorPool, list[AttemptResult]],
) -> None:
    executor, results = pool
    executor.start(SPAWN)
    seen: list[int] = []

    def task() -> tuple[object, Job]:
        seen.append(threading.get_ident())
        return registry.get(jobs.echo.name), echo_job("a")

    wait_until(lambda: executor.run_here(task), what="a thread to wait for work")
    wait_until(lambda: results, what="the job to run")
    assert [(r.job.id, r.status) for r in results] == [("a", JobStatus.SUCCEEDED)]
    assert seen and seen[0] != threading.get_ident()


def test_thread_given_a_job_is_not_counted_as_waiting_for_a_task(
    pool: tuple[ExecutorPool, list[AttemptResult]],
) -> None:
    executor, results = pool
    executor.start(SPAWN)
    started, release = threading.Event(), threading.Event()

    def blocking_task() -> None:
        started.set()
        release.wait(10)

    wait_until(lambda: executor.run_here(blocking_task), what="a waiting thread")
    assert started.wait(10)
    # The only thread is busy with the task: nothing else may be handed to it.
    assert executor.run_here(lambda: None) is False
    executor.submit(registry.get(jobs.echo.name), echo_job("b"))
    assert executor.run_here(lambda: None) is False
    release.set()
    wait_until(lambda: results, what="the queued job to run")
    assert [r.job.id for r in results] == ["b"]


def test_handover_not_started_in_time_is_withdrawn_and_never_runs() -> None:
    handover = Handover()
    assert handover.withdrawn() is True
    assert handover.start() is False  # the thread that gets it later skips it


def test_started_handover_stays_with_its_thread() -> None:
    handover = Handover()
    assert handover.start() is True
    assert handover.withdrawn() is False
    handover.finish(2, [])
    assert handover.result() == (2, [])
