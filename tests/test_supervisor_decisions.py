"""The process-mode supervisor's decisions, in-process.

Restarts, messages, timeouts and the stop deadline are driven with a stepped
monotonic clock and, where a process must exist, stand-in processes
(tests/stand_in_processes.py) that start far faster than worker processes. What
the supervisor then asks Redis to record goes through its real recovery thread
and the suite's Redis. A few tests run the whole loop with real worker processes
(tests/test_supervisor.py drives `runworker --processes` end to end).
"""

import json
import logging
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest

from django_redisjobs import JobHandle, JobStatus, keys
from django_redisjobs.job import Job, now_epoch_ms
from django_redisjobs.queue import WORKER_LOST, get_store
from django_redisjobs.worker import (
    Supervisor,
    SupervisorConfig,
    WorkerConfig,
    install_supervisor_signal_handlers,
)
from django_redisjobs.worker.child import Reporter
from django_redisjobs.worker.child_recovery import RunningJob
from django_redisjobs.worker.supervisor import _Child, _describe_exit
from tests import jobs, process_jobs, stand_in_processes
from tests.conftest import RedisJobs
from tests.polling import DEADLINE_S, wait_until

SPAWN = multiprocessing.get_context("spawn")
LEASE_MS = 60_000
JOB_TIMEOUT = "django_redisjobs.exceptions.JobTimeout"
LOGGER = "django_redisjobs.worker"
GRACE = timedelta(seconds=5)


class Clock:
    """A monotonic clock that moves only when a test moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_supervisor(
    redisjobs: RedisJobs, clock: Clock
) -> Iterator[Callable[..., Supervisor]]:
    """Build supervisors on the stepped clock, their recovery thread running;
    at the end kill what they still supervise and release their pipes."""
    made: list[Supervisor] = []

    def make(burst: bool = False, **config: Any) -> Supervisor:
        worker = WorkerConfig(queues=("default", "other"), burst=burst, grace=GRACE)
        supervisor = Supervisor(
            SupervisorConfig(processes=2, worker=worker, **config), monotonic=clock
        )
        supervisor.recovery.start()
        made.append(supervisor)
        return supervisor

    yield make
    for supervisor in made:
        supervisor.recovery.close(timeout_s=DEADLINE_S)
        for child in supervisor._children:
            child.process.kill()
            child.process.join()
            child.conn.close()
        os.close(supervisor._wake_r)
        os.close(supervisor._wake_w)


@pytest.fixture
def supervisor(make_supervisor: Callable[..., Supervisor]) -> Supervisor:
    return make_supervisor()


def record_of(supervisor: Supervisor, slot: int = 0) -> _Child:
    """A child as the supervisor records it, with no process or pipe behind it."""
    reader, writer = SPAWN.Pipe(duplex=False)
    reader.close()
    writer.close()
    return _Child(
        slot, f"sup.{slot}.0000", SPAWN.Process(), reader, supervisor.monotonic()
    )


@pytest.fixture
def stand_in(
    supervisor: Supervisor,
) -> Iterator[Callable[..., _Child]]:
    """Start a stand-in process in a slot of `supervisor`, as `_start` would."""
    started: list[multiprocessing.process.BaseProcess] = []

    def start(slot: int, target: Callable[..., None], *args: Any) -> _Child:
        reader, writer = SPAWN.Pipe(duplex=False)
        process = SPAWN.Process(target=target, args=(writer, *args), daemon=True)
        process.start()
        writer.close()
        started.append(process)
        assert reader.poll(DEADLINE_S), "the stand-in did not start"
        assert reader.recv_bytes() == stand_in_processes.READY
        child = _Child(
            slot, f"sup.{slot}.{slot:04x}", process, reader, supervisor.monotonic()
        )
        supervisor._children.append(child)
        return child

    yield start
    for process in started:
        process.kill()
        process.join()


def claim(handle: JobHandle, worker_id: str) -> None:
    (job,) = get_store().claim(handle.queue, worker_id, 1, now_epoch_ms(), LEASE_MS)
    assert isinstance(job, Job)
    assert job.id == handle.id, "the test expected another job at the queue's head"


# -- how a lost process is described ----------------------------------------


@pytest.mark.parametrize(
    ("exitcode", "description"),
    [
        (1, "exited with code 1"),
        (3, "exited with code 3"),
        (-signal.SIGKILL, "was killed by signal SIGKILL"),
        (-signal.SIGSEGV, "was killed by signal SIGSEGV"),
        (-200, "was killed by signal 200"),
    ],
)
def test_exit_is_described_by_its_code_or_signal_name(
    exitcode: int, description: str
) -> None:
    assert _describe_exit(exitcode) == description


# -- restarts ---------------------------------------------------------------


def replacement_delay(
    supervisor: Supervisor, clock: Clock, lived_s: float, crashed: bool = True
) -> float | None:
    """Seconds until the slot of a child that lived `lived_s` restarts (None:
    never), as the supervisor decides when it sees the child gone."""
    child = record_of(supervisor)
    clock.now += lived_s
    supervisor._replace(child, crashed=crashed)
    restart_at = supervisor._restart_at.pop(child.slot, None)
    return None if restart_at is None else restart_at - clock.now


def test_young_crashes_are_replaced_at_once_then_after_a_doubling_delay_up_to_30_s(
    supervisor: Supervisor, clock: Clock
) -> None:
    delays = [replacement_delay(supervisor, clock, lived_s=1) for _ in range(10)]

    assert delays == [0, 0.5, 1, 2, 4, 8, 16, 30, 30, 30]


def test_restart_delay_stays_at_30_s_however_long_a_slot_keeps_crashing(
    supervisor: Supervisor, clock: Clock
) -> None:
    # About nine hours of a broken deploy at one start every 30 s.
    delays = [replacement_delay(supervisor, clock, lived_s=1) for _ in range(1100)]

    assert delays[-1] == 30


def test_crash_after_a_long_life_is_replaced_at_once_and_resets_the_count(
    supervisor: Supervisor, clock: Clock
) -> None:
    young = [replacement_delay(supervisor, clock, lived_s=9.9) for _ in range(3)]
    old = replacement_delay(supervisor, clock, lived_s=10)
    young_again = [replacement_delay(supervisor, clock, lived_s=1) for _ in range(2)]

    assert (young, old, young_again) == ([0, 0.5, 1], 0, [0, 0.5])


def test_clean_exit_or_kill_is_replaced_at_once_and_leaves_the_count(
    supervisor: Supervisor, clock: Clock
) -> None:
    first = [replacement_delay(supervisor, clock, lived_s=1) for _ in range(2)]
    clean = replacement_delay(supervisor, clock, lived_s=1, crashed=False)
    next_crash = replacement_delay(supervisor, clock, lived_s=1)

    assert (first, clean, next_crash) == ([0, 0.5], 0, 1)


def test_long_life_resets_the_count_also_when_it_ends_in_a_clean_exit_or_kill(
    supervisor: Supervisor, clock: Clock
) -> None:
    # docs/processes.md: "A process that lived longer than 10 seconds resets the
    # count", e.g. one recycled by --max-jobs after hours of work.
    young = [replacement_delay(supervisor, clock, lived_s=1) for _ in range(3)]
    long_life = replacement_delay(supervisor, clock, lived_s=3600, crashed=False)
    next_crash = replacement_delay(supervisor, clock, lived_s=1)

    assert (young, long_life, next_crash) == ([0, 0.5, 1], 0, 0)


def test_each_slot_counts_its_own_young_crashes(
    supervisor: Supervisor, clock: Clock
) -> None:
    for _ in range(3):
        supervisor._replace(record_of(supervisor, slot=0), crashed=True)
    supervisor._replace(record_of(supervisor, slot=1), crashed=True)

    assert supervisor._restart_at == {0: clock.now + 1, 1: clock.now}


def test_nothing_is_replaced_while_stopping(
    supervisor: Supervisor, clock: Clock
) -> None:
    supervisor.request_stop()

    assert replacement_delay(supervisor, clock, lived_s=1) is None
    assert replacement_delay(supervisor, clock, lived_s=60, crashed=False) is None


def test_restart_waits_for_its_time_and_a_stop_drops_it(
    supervisor: Supervisor, clock: Clock
) -> None:
    for _ in range(2):
        supervisor._replace(record_of(supervisor), crashed=True)
    due = clock.now + 0.5
    assert supervisor._restart_at == {0: due}

    clock.now += 0.499
    supervisor._start_due()
    assert supervisor._restart_at == {0: due}
    supervisor.request_stop()
    supervisor._start_due()

    assert supervisor._restart_at == {}
    assert supervisor._children == []


# -- messages from worker processes -----------------------------------------


def test_start_message_sets_the_kill_time_to_its_timeout_plus_kill_grace(
    make_supervisor: Callable[..., Supervisor], clock: Clock
) -> None:
    supervisor = make_supervisor(kill_grace=timedelta(seconds=2))
    child = record_of(supervisor)

    supervisor._handle(child, ["start", "job-1", "default", 3, 1500])

    assert child.running == {
        "job-1": RunningJob("job-1", "default", 3, 1500, clock.now, clock.now + 3.5)
    }


def test_end_message_forgets_the_job_and_unknown_ids_or_kinds_are_ignored(
    supervisor: Supervisor,
) -> None:
    child = record_of(supervisor)
    supervisor._handle(child, ["start", "job-1", "default", 1, 1000])
    supervisor._handle(child, ["start", "job-2", "default", 1, 1000])

    supervisor._handle(child, ["end", "job-1"])
    supervisor._handle(child, ["end", "never-started"])
    supervisor._handle(child, ["progress", "job-2", 0.5])

    assert list(child.running) == ["job-2"]


def test_stats_messages_of_every_process_are_summed(supervisor: Supervisor) -> None:
    first, second = record_of(supervisor, 0), record_of(supervisor, 1)

    supervisor._handle(first, ["stats", {"succeeded": 3, "dead": 1}])
    supervisor._handle(second, ["stats", {"succeeded": 2, "retrying": 1}])

    assert supervisor.by_status == {"succeeded": 5, "dead": 1, "retrying": 1}


def test_messages_are_read_until_the_process_closes_its_pipe(
    supervisor: Supervisor,
) -> None:
    reader, writer = SPAWN.Pipe(duplex=False)
    child = _Child(0, "sup.0.0000", SPAWN.Process(), reader, 0.0)
    reporter = Reporter(writer)
    reporter.send(["start", "job-1", "default", 1, 1000])
    reporter.send(["start", "job-2", "default", 1, 1000])
    reporter.send(["end", "job-1"])
    supervisor._read_from(child)
    assert list(child.running) == ["job-2"]
    assert not child.said_all

    reporter.send(["stats", {"succeeded": 1}])
    writer.close()
    supervisor._read_from(child)

    assert child.said_all
    assert supervisor.by_status == {"succeeded": 1}
    reader.close()


# -- timeouts ---------------------------------------------------------------


def test_process_with_a_job_past_its_timeout_plus_kill_grace_is_killed_and_replaced(
    supervisor: Supervisor,
    stand_in: Callable[..., _Child],
    clock: Clock,
    redisjobs: RedisJobs,
    caplog: pytest.LogCaptureFixture,
) -> None:
    late_child = stand_in(0, stand_in_processes.waits, "exit")
    calm_child = stand_in(1, stand_in_processes.waits, "exit")
    late = process_jobs.waits_with_own_backoff.delay()
    neighbour = jobs.add.delay(1, 1)
    calm = process_jobs.waits_with_own_backoff.delay()
    claim(late, late_child.worker_id)
    claim(neighbour, late_child.worker_id)
    claim(calm, calm_child.worker_id)
    started = clock.now
    supervisor._handle(late_child, ["start", late.id, "default", 1, 1000])
    clock.now += 0.5
    supervisor._handle(calm_child, ["start", calm.id, "default", 1, 1000])

    clock.now = started + 1.999
    supervisor._enforce_timeouts()
    assert supervisor._children == [late_child, calm_child]
    with caplog.at_level(logging.WARNING, LOGGER):
        clock.now = started + 2
        supervisor._enforce_timeouts()
        supervisor.recovery.close(timeout_s=DEADLINE_S)

    assert late_child.process.exitcode == -signal.SIGKILL
    assert supervisor._children == [calm_child]
    assert calm_child.process.exitcode is None
    assert supervisor._restart_at == {0: clock.now}
    assert (
        f"job past its timeout, killing its worker process job id={late.id} "
        f"queue=default attempt=1 timeout_s=1 worker={late_child.worker_id} "
        f"pid={late_child.process.pid}"
    ) in caplog.messages
    assert late.refresh().status is JobStatus.RETRYING
    assert late.error is not None
    assert late.error.exc_class == JOB_TIMEOUT
    assert neighbour.refresh().status is JobStatus.QUEUED
    assert (neighbour.attempts, neighbour.job.lost) == (0, 0)
    assert calm.refresh().status is JobStatus.ACTIVE


# -- processes that end -----------------------------------------------------


def test_process_that_died_is_replaced_and_its_jobs_recovered_with_how_it_died(
    supervisor: Supervisor,
    stand_in: Callable[..., _Child],
    caplog: pytest.LogCaptureFixture,
    clock: Clock,
) -> None:
    child = stand_in(0, stand_in_processes.exits, 3)
    handle = jobs.add.delay(1, 1)
    claim(handle, child.worker_id)
    child.process.join(DEADLINE_S)

    with caplog.at_level(logging.WARNING, LOGGER):
        supervisor._reap()
        supervisor.recovery.close(timeout_s=DEADLINE_S)

    assert supervisor._children == []
    assert supervisor._restart_at == {0: clock.now}
    assert (
        f"worker process died id={child.worker_id} pid={child.process.pid} "
        "exitcode=3, recovering its jobs"
    ) in caplog.messages
    job = handle.refresh().job
    assert job.status is JobStatus.QUEUED
    assert (job.attempts, job.lost) == (1, 1)
    assert job.error is not None
    assert job.error.exc_class == WORKER_LOST
    assert job.error.message == (
        f"Worker process {child.worker_id} exited with code 3 during attempt 1."
    )


@pytest.mark.parametrize(("burst", "replaced"), [(False, True), (True, False)])
def test_process_that_exited_zero_is_replaced_unless_in_burst_mode(
    make_supervisor: Callable[..., Supervisor],
    clock: Clock,
    burst: bool,
    replaced: bool,
) -> None:
    supervisor = make_supervisor(burst=burst)
    reader, writer = SPAWN.Pipe(duplex=False)
    process = SPAWN.Process(
        target=stand_in_processes.exits, args=(writer, 0), daemon=True
    )
    process.start()
    writer.close()
    process.join(DEADLINE_S)
    supervisor._children.append(_Child(1, "sup.1.0000", process, reader, clock.now))

    supervisor._reap()

    assert supervisor._children == []
    assert supervisor._restart_at == ({1: clock.now} if replaced else {})


# -- stopping ---------------------------------------------------------------


def test_stop_asks_each_process_once_then_kills_those_left_at_the_deadline(
    supervisor: Supervisor,
    stand_in: Callable[..., _Child],
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    obedient = stand_in(0, stand_in_processes.waits, "exit")
    stuck = stand_in(1, stand_in_processes.waits, "ignore")
    held = jobs.add.delay(1, 1)
    claim(held, stuck.worker_id)
    asked_at = clock.now

    supervisor.request_stop()
    supervisor._forward_stop()
    obedient.process.join(DEADLINE_S)
    supervisor._reap()
    clock.now = asked_at + GRACE.total_seconds() + 14.999
    supervisor._forward_stop()

    assert obedient.process.exitcode == 0
    assert (obedient.stop_sent, stuck.stop_sent) == (True, True)
    assert supervisor._children == [stuck]
    assert stuck.process.exitcode is None
    with caplog.at_level(logging.WARNING, LOGGER):
        clock.now = asked_at + GRACE.total_seconds() + 15
        supervisor._forward_stop()
        supervisor.recovery.close(timeout_s=DEADLINE_S)

    assert stuck.process.exitcode == -signal.SIGKILL
    assert supervisor._children == []
    assert supervisor._restart_at == {}
    assert (
        "worker process did not stop in time, killing it "
        f"id={stuck.worker_id} pid={stuck.process.pid}"
    ) in caplog.messages
    job = held.refresh().job
    assert job.status is JobStatus.QUEUED
    assert (job.attempts, job.lost) == (0, 0)


def test_first_signal_stops_gracefully_and_a_second_sigint_kills_at_once(
    supervisor: Supervisor,
) -> None:
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        install_supervisor_signal_handlers(supervisor)
        handler = signal.getsignal(signal.SIGTERM)
        assert callable(handler)
        assert signal.getsignal(signal.SIGINT) is handler

        handler(signal.SIGTERM, None)
        assert supervisor.stopping
        assert not supervisor._kill_now
        handler(signal.SIGTERM, None)
        assert not supervisor._kill_now
        handler(signal.SIGINT, None)
        assert supervisor._kill_now
    finally:
        for signum, previous in saved.items():
            signal.signal(signum, previous)


# -- the whole loop, with real worker processes ------------------------------


@pytest.fixture
def worker_processes_settings(
    redisjobs: RedisJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Point the worker processes, which read tests/settings.py, at this test's
    Redis and prefix."""
    overrides = {
        **redisjobs.settings,
        "AUTODISCOVER_MODULES": ["jobs", "process_jobs"],
    }
    monkeypatch.setenv("REDISJOBS_TEST_SETTINGS", json.dumps(overrides))


def real_supervisor(**worker: Any) -> Supervisor:
    config = WorkerConfig(queues=("default",), grace=GRACE, **worker)
    return Supervisor(
        SupervisorConfig(
            processes=1, worker=config, kill_grace=timedelta(milliseconds=200)
        )
    )


@contextmanager
def supervising(supervisor: Supervisor) -> Iterator[list[int]]:
    """Run `supervisor` in a thread; the block must stop it. Yields the list
    its exit code goes to; a block that fails kills its processes."""
    code: list[int] = []
    thread = threading.Thread(target=lambda: code.append(supervisor.run()))
    thread.start()
    try:
        yield code
    except BaseException:
        supervisor.kill_now()
        raise
    finally:
        thread.join(DEADLINE_S)
    assert not thread.is_alive(), "the supervisor did not stop"


def registered_workers(redisjobs: RedisJobs) -> list[str]:
    return [
        str(w) for w in redisjobs.client.zrange(keys.workers(redisjobs.prefix), 0, -1)
    ]


@pytest.mark.usefixtures("worker_processes_settings")
def test_burst_supervisor_returns_once_its_process_drained_the_queue(
    redisjobs: RedisJobs,
) -> None:
    handles = [jobs.add.delay(n, 1) for n in range(3)]
    supervisor = real_supervisor(burst=True)

    assert supervisor.run() == 0

    assert [h.refresh().result for h in handles] == [1, 2, 3]
    assert supervisor.by_status == {"succeeded": 3}
    assert registered_workers(redisjobs) == []


@pytest.mark.usefixtures("worker_processes_settings")
def test_supervisor_kills_a_process_stuck_past_a_timeout_and_starts_another(
    redisjobs: RedisJobs,
) -> None:
    supervisor = real_supervisor()
    handle = process_jobs.blocks_past_timeout.using(max_attempts=1).delay(30)

    with supervising(supervisor) as code:
        wait_until(lambda: handle.refresh().status is JobStatus.DEAD)
        first = handle.job.worker
        wait_until(lambda: registered_workers(redisjobs) not in ([], [first]))
        supervisor.request_stop()

    assert code == [0]
    assert handle.job.lost == 0
    assert handle.error is not None
    assert handle.error.exc_class == JOB_TIMEOUT
    assert registered_workers(redisjobs) == []


@pytest.mark.usefixtures("worker_processes_settings")
def test_kill_now_kills_the_processes_and_records_nothing(
    redisjobs: RedisJobs,
) -> None:
    supervisor = real_supervisor()

    with supervising(supervisor) as code:
        (worker_id,) = wait_until(lambda: registered_workers(redisjobs))
        supervisor.kill_now()

    assert code == [1]
    assert supervisor._children == []
    # Nobody unregistered it: its heartbeat expires as a crashed worker's would.
    assert registered_workers(redisjobs) == [worker_id]


def test_a_stop_signal_after_run_returned_is_harmless() -> None:
    supervisor = Supervisor(
        SupervisorConfig(processes=1, worker=WorkerConfig(queues=("default",)))
    )
    os.close(supervisor._wake_r)
    os.close(supervisor._wake_w)
    supervisor._wake_r = supervisor._wake_w = -1  # as run() leaves them
    supervisor.request_stop()  # would write to a closed descriptor
    assert supervisor.stopping
