"""Process mode: `manage.py runworker --processes` as a real subprocess tree.

Each test starts a supervisor pointed at the suite's Redis (through
REDISJOBS_TEST_SETTINGS, read by tests/settings.py) and waits on state it can
observe in Redis, in /proc or in the supervisor's log, always with a deadline.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

from django_redisjobs import JobHandle, JobStatus, keys
from tests import jobs, polling, process_jobs

ROOT = Path(__file__).resolve().parent.parent
WORKER_LOST = "django_redisjobs.WorkerLost"
JOB_TIMEOUT = "django_redisjobs.exceptions.JobTimeout"

pytestmark = pytest.mark.slow


@dataclass
class SupervisorProcess:
    """A running `runworker --processes` and where its log goes."""

    process: subprocess.Popen[bytes]
    log: Path
    redisjobs: Any

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def worker_ids(self) -> list[str]:
        """Ids of the child workers alive in Redis (heartbeat registered)."""
        return list(
            self.redisjobs.client.zrange(keys.workers(self.redisjobs.prefix), 0, -1)
        )

    def worker_pid(self, worker_id: str) -> int:
        key = keys.worker(self.redisjobs.prefix, worker_id)
        return int(self.redisjobs.client.hget(key, "pid"))

    def wait_exit(self, timeout_s: float) -> int:
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            pytest.fail(
                f"supervisor still running after {timeout_s} s\n{self.log_text()}"
            )


def wait_until(
    condition: Callable[[], Any], timeout_s: float, supervisor: SupervisorProcess
) -> Any:
    """Poll `condition` until it is truthy; fail with the supervisor's log if not."""
    return polling.wait_until(
        condition, timeout_s, lambda: f"a condition\n{supervisor.log_text()}"
    )


def status_is(handle: JobHandle, status: JobStatus) -> Callable[[], bool]:
    return lambda: handle.refresh().status is status


@pytest.fixture
def start_supervisor(
    redisjobs: Any, tmp_path: Path
) -> Iterator[Callable[..., SupervisorProcess]]:
    """Start ``runworker --processes N`` with extra args and REDISJOBS overrides."""
    started: list[SupervisorProcess] = []

    def start(
        *args: str, processes: int = 2, ready: bool = True, **settings: Any
    ) -> SupervisorProcess:
        overrides = {
            **redisjobs.settings,
            "AUTODISCOVER_MODULES": ["jobs", "process_jobs"],
            **settings,
        }
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "REDISJOBS_TEST_SETTINGS": json.dumps(overrides),
        }
        log = tmp_path / f"supervisor-{len(started)}.log"
        command = [sys.executable, str(ROOT / "manage.py"), "runworker"]
        command += ["--processes", str(processes), "--grace", "10", *args]
        with open(log, "wb") as out:
            process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        supervisor = SupervisorProcess(process, log, redisjobs)
        started.append(supervisor)
        if ready:
            wait_until(
                lambda: len(supervisor.worker_ids()) == processes, 20, supervisor
            )
        return supervisor

    yield start
    for supervisor in started:
        process = supervisor.process
        if process.poll() is None:
            children = child_pids(process.pid)
            process.kill()
            process.wait()
            for pid in children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def child_pids(pid: int) -> list[int]:
    """The live children of `pid` (Linux /proc)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as children:
            return [int(p) for p in children.read().split()]
    except FileNotFoundError:
        return []


def resident_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return 0.0


def test_job_past_its_timeout_is_killed_with_its_process_then_retried_then_dead(
    start_supervisor: Callable[..., SupervisorProcess], tmp_path: Path
) -> None:
    supervisor = start_supervisor("--concurrency", "2", processes=1)
    (first_worker,) = supervisor.worker_ids()
    release = tmp_path / "release"
    bystander = jobs.touch_file_when_released.delay(str(tmp_path / "out"), str(release))
    wait_until(status_is(bystander, JobStatus.ACTIVE), 10, supervisor)
    handle = process_jobs.blocks_past_timeout.delay(30)

    wait_until(status_is(handle, JobStatus.DEAD), 20, supervisor)

    assert handle.attempts == 2
    assert handle.job.lost == 0
    assert handle.error is not None
    assert handle.error.exc_class == JOB_TIMEOUT
    assert "ran past its timeout of 0.5 s" in handle.error.message
    log = supervisor.log_text()
    assert log.count("job past its timeout, killing its worker process") == 2
    assert first_worker not in supervisor.worker_ids()
    # The job that shared the killed process went back without using an attempt.
    assert "job requeued after its worker process was killed" in log
    release.touch()
    wait_until(status_is(bystander, JobStatus.SUCCEEDED), 15, supervisor)
    assert bystander.attempts == 1
    assert bystander.job.lost == 0
    after = jobs.add.delay(1, 2)
    wait_until(status_is(after, JobStatus.SUCCEEDED), 15, supervisor)


def test_job_past_its_timeout_in_python_code_stops_without_a_kill(
    start_supervisor: Callable[..., SupervisorProcess],
) -> None:
    # The child's own watchdog (the thread-mode timeout) fires first; the kill is
    # only for code it cannot reach.
    supervisor = start_supervisor(processes=1)
    handle = jobs.sleeps.delay(5)

    wait_until(status_is(handle, JobStatus.DEAD), 10, supervisor)

    assert handle.error is not None
    assert handle.error.exc_class == JOB_TIMEOUT
    after = jobs.add.delay(1, 1)
    wait_until(status_is(after, JobStatus.SUCCEEDED), 10, supervisor)
    assert after.job.worker == handle.job.worker
    assert "killing its worker process" not in supervisor.log_text()


def test_process_that_exits_is_replaced_and_its_job_recovered_at_once(
    start_supervisor: Callable[..., SupervisorProcess],
) -> None:
    # Leases of 60 s: the job can end within the wait below only if the
    # supervisor recovers it as soon as the process dies.
    supervisor = start_supervisor(LEASE_S=60)
    handle = process_jobs.exits_process.delay(1)

    wait_until(status_is(handle, JobStatus.DEAD), 20, supervisor)

    assert handle.attempts == 2
    assert handle.job.lost == 2
    assert handle.error is not None
    assert handle.error.exc_class == WORKER_LOST
    assert "exited with code 1 during attempt 2." in handle.error.message
    assert supervisor.log_text().count("worker process died") == 2
    after = jobs.add.delay(2, 2)
    wait_until(status_is(after, JobStatus.SUCCEEDED), 15, supervisor)
    assert after.result == 4
    # Two processes died and two replaced them.
    wait_until(
        lambda: supervisor.log_text().count("worker process started") == 4,
        10,
        supervisor,
    )
    wait_until(lambda: len(supervisor.worker_ids()) == 2, 10, supervisor)


def test_job_that_hits_its_memory_limit_fails_and_the_process_serves_on(
    start_supervisor: Callable[..., SupervisorProcess],
) -> None:
    supervisor = start_supervisor("--concurrency", "1", processes=1)
    handle = process_jobs.allocates_past_limit.delay(64)

    wait_until(status_is(handle, JobStatus.DEAD), 20, supervisor)

    assert handle.error is not None
    assert handle.error.exc_class == "builtins.MemoryError"
    after = jobs.add.delay(3, 4)
    wait_until(status_is(after, JobStatus.SUCCEEDED), 15, supervisor)
    assert after.job.worker == handle.job.worker  # the same process went on


def test_process_killed_like_the_oom_killer_is_replaced_and_its_job_recovered(
    start_supervisor: Callable[..., SupervisorProcess],
) -> None:
    supervisor = start_supervisor(processes=1, LEASE_S=60)
    handle = process_jobs.allocates_until_killed.delay(8, 512)
    wait_until(status_is(handle, JobStatus.ACTIVE), 10, supervisor)
    pid = supervisor.worker_pid(handle.job.worker)

    wait_until(lambda: resident_mb(pid) > 96, 20, supervisor)
    os.kill(pid, signal.SIGKILL)

    wait_until(status_is(handle, JobStatus.DEAD), 20, supervisor)
    assert handle.job.lost == 1
    assert handle.error is not None
    assert handle.error.exc_class == WORKER_LOST
    assert "was killed by signal SIGKILL during attempt 1." in handle.error.message
    after = jobs.add.delay(5, 5)
    wait_until(status_is(after, JobStatus.SUCCEEDED), 15, supervisor)
    assert after.job.worker != handle.job.worker


def test_sigterm_lets_the_running_job_finish_then_exits_zero(
    start_supervisor: Callable[..., SupervisorProcess], tmp_path: Path
) -> None:
    supervisor = start_supervisor()
    release = tmp_path / "release"
    handle = jobs.touch_file_when_released.delay(str(tmp_path / "out"), str(release))
    # Running, not just claimed: a claimed job still waiting for a thread would be
    # handed back at the stop.
    wait_until(Path(f"{release}.started").exists, 10, supervisor)

    supervisor.process.send_signal(signal.SIGTERM)
    wait_until(
        lambda: supervisor.log_text().count("worker stopping") == 2, 10, supervisor
    )
    release.touch()

    assert supervisor.wait_exit(20) == 0
    assert handle.refresh().status is JobStatus.SUCCEEDED
    assert handle.attempts == 1
    assert supervisor.worker_ids() == []


def test_second_sigint_kills_the_processes_and_exits_at_once(
    start_supervisor: Callable[..., SupervisorProcess], tmp_path: Path
) -> None:
    supervisor = start_supervisor(processes=1)
    never = tmp_path / "never"
    handle = jobs.touch_file_when_released.delay(str(tmp_path / "out"), str(never))
    wait_until(Path(f"{never}.started").exists, 10, supervisor)
    pid = supervisor.worker_pid(handle.refresh().job.worker)

    supervisor.process.send_signal(signal.SIGINT)
    wait_until(lambda: "worker stopping" in supervisor.log_text(), 10, supervisor)
    supervisor.process.send_signal(signal.SIGINT)

    assert supervisor.wait_exit(10) == 1
    assert not Path(f"/proc/{pid}").exists()
    # Nobody requeued it: its lease expires and recovery takes it back.
    assert handle.refresh().status is JobStatus.ACTIVE


def test_processes_stop_when_the_supervisor_is_killed(
    start_supervisor: Callable[..., SupervisorProcess],
) -> None:
    supervisor = start_supervisor()

    supervisor.process.kill()
    supervisor.process.wait()

    wait_until(lambda: supervisor.worker_ids() == [], 15, supervisor)


def test_burst_runs_the_ready_jobs_in_every_process_then_exits(
    start_supervisor: Callable[..., SupervisorProcess],
) -> None:
    handles = [jobs.add.delay(n, 1) for n in range(6)]

    supervisor = start_supervisor("--burst", ready=False)

    assert supervisor.wait_exit(30) == 0
    assert [h.refresh().result for h in handles] == [n + 1 for n in range(6)]
    assert "Burst done: 6 jobs ended (6 succeeded), in 6 attempts." in (
        supervisor.log_text()
    )


def test_recovery_of_a_dead_process_waits_for_redis_to_come_back(
    start_supervisor: Callable[..., SupervisorProcess],
    make_redis_server: Callable[..., Any],
    redisjobs: Any,
    tmp_path: Path,
) -> None:
    server = make_redis_server(appendonly="yes", appendfsync="always")
    release = tmp_path / "release"
    with override_settings(REDISJOBS={**redisjobs.settings, "REDIS_URL": server.url}):
        supervisor = start_supervisor(processes=1, REDIS_URL=server.url, LEASE_S=60)
        handle = jobs.touch_file_when_released.delay(
            str(tmp_path / "out"), str(release)
        )
        wait_until(status_is(handle, JobStatus.ACTIVE), 10, supervisor)
        pid = supervisor.worker_pid(handle.job.worker)

        server.kill()
        os.kill(pid, signal.SIGKILL)
        wait_until(
            lambda: "redis unavailable while recovering jobs" in supervisor.log_text(),
            10,
            supervisor,
        )
        server.start()

        wait_until(lambda: handle.refresh().job.lost == 1, 20, supervisor)
        assert handle.error is not None
        assert "was killed by signal SIGKILL during attempt 1." in handle.error.message
        release.touch()
        wait_until(status_is(handle, JobStatus.SUCCEEDED), 20, supervisor)
        assert handle.attempts == 2
