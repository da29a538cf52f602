"""`manage.py runworker` as a real subprocess: burst, signals, crashes, bad input.

Each worker is ``python manage.py runworker`` run from the project root with
``tests.settings``. The settings of the test's `redisjobs` fixture (same server and
key prefix) reach it as JSON in ``REDISJOBS_TEST_SETTINGS``. Waits poll what another
process makes observable (a job's hash, a log line, the exit status) until a
deadline; nothing sleeps a fixed time.
"""

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from django_redisjobs import keys
from django_redisjobs.job import JobStatus
from tests import jobs
from tests.conftest import RedisJobs
from tests.polling import DEADLINE_S, wait_until
from tests.servers import free_port

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class WorkerProcess:
    """One `runworker` subprocess; its output goes to files under the test's tmp."""

    process: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text()

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def wait(self, timeout_s: float = DEADLINE_S) -> int:
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            pytest.fail(
                f"runworker still running after {timeout_s} s.\n"
                f"stdout:\n{self.stdout}\nstderr:\n{self.stderr}"
            )

    def send_signal(self, signum: int) -> None:
        self.process.send_signal(signum)


StartWorker = Callable[..., WorkerProcess]


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[StartWorker]:
    """Start `manage.py runworker` subprocesses; any left running are killed."""
    started: list[WorkerProcess] = []

    def start(*args: str, settings: dict[str, Any] | None = None) -> WorkerProcess:
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
        env.pop("REDISJOBS_TEST_SETTINGS", None)
        if settings is not None:
            env["REDISJOBS_TEST_SETTINGS"] = json.dumps(settings)
        n = len(started)
        stdout_path = tmp_path / f"worker{n}.out"
        stderr_path = tmp_path / f"worker{n}.err"
        with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
            process = subprocess.Popen(
                [sys.executable, "manage.py", "runworker", *args],
                cwd=PROJECT_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )
        worker = WorkerProcess(process, stdout_path, stderr_path)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.process.poll() is None:
            worker.process.kill()
        worker.process.wait()


def worker_settings(redisjobs: RedisJobs, **changes: Any) -> dict[str, Any]:
    """The fixture's REDISJOBS for a subprocess, which must also find tests/jobs.py."""
    return {
        **redisjobs.settings,
        "AUTODISCOVER_MODULES": ["tasks", "jobs"],
        **changes,
    }


def test_burst_runs_ready_jobs_then_exits_with_a_summary(
    redisjobs: RedisJobs, start_worker: StartWorker
) -> None:
    sums = [jobs.add.delay(n, 10) for n in range(3)]
    rejected = jobs.rejects.delay(-1)

    worker = start_worker("--burst", settings=worker_settings(redisjobs))

    assert worker.wait() == 0, worker.stderr
    assert worker.stdout.strip() == (
        "Burst done: 4 jobs ended (3 succeeded, 1 dead), in 4 attempts."
    )
    assert "Traceback" not in worker.stdout
    assert [h.refresh().status for h in sums] == [JobStatus.SUCCEEDED] * 3
    assert [h.result for h in sums] == [10, 11, 12]
    rejected.refresh()
    assert rejected.status is JobStatus.DEAD
    assert rejected.error is not None
    assert rejected.error.exc_class == "builtins.ValueError"
    assert rejected.attempts == 1


def test_burst_with_no_jobs_reports_none(
    redisjobs: RedisJobs, start_worker: StartWorker
) -> None:
    worker = start_worker("--burst", settings=worker_settings(redisjobs))

    assert worker.wait() == 0, worker.stderr
    assert worker.stdout.startswith("Burst done: no job was ready in default, ")


def test_sigterm_waits_for_the_running_job_then_exits_zero(
    redisjobs: RedisJobs, start_worker: StartWorker, tmp_path: Path
) -> None:
    out, release = tmp_path / "touched", tmp_path / "release"
    handle = jobs.touch_file_when_released.delay(str(out), str(release))
    worker = start_worker("--name", "w-term", settings=worker_settings(redisjobs))
    started = Path(f"{release}.started")
    wait_until(started.exists, what="the job to start running")

    worker.send_signal(signal.SIGTERM)
    wait_until(lambda: "worker stopping" in worker.stderr, what="stop is logged")
    # The job cannot end until `release` exists, so the worker must still wait.
    assert worker.process.poll() is None
    release.touch()

    assert worker.wait() == 0, worker.stderr
    assert out.read_text() == f"{handle.id} {worker.pid}\n"
    assert handle.refresh().status is JobStatus.SUCCEEDED
    assert handle.result == worker.pid
    assert handle.attempts == 1
    assert handle.job.worker == "w-term"
    assert "Traceback" not in worker.stderr


def test_sigterm_past_grace_requeues_the_job_without_using_an_attempt(
    redisjobs: RedisJobs, start_worker: StartWorker, tmp_path: Path
) -> None:
    out, release = tmp_path / "touched", tmp_path / "release"
    handle = jobs.touch_file_when_released.delay(str(out), str(release))
    first = start_worker("--grace", "0.5", settings=worker_settings(redisjobs))
    wait_until(
        lambda: handle.refresh().status is JobStatus.ACTIVE, what="job is active"
    )

    first.send_signal(signal.SIGTERM)
    # The job would run for 30 s more (until release appears or its timeout).
    assert first.wait(timeout_s=10) == 0, first.stderr
    assert not out.exists()
    assert handle.refresh().status is JobStatus.QUEUED
    assert handle.attempts == 0
    assert handle.job.worker == ""
    assert "job requeued at stop" in first.stderr

    release.touch()
    second = start_worker("--burst", settings=worker_settings(redisjobs))
    assert second.wait() == 0, second.stderr
    assert second.stdout.strip() == (
        "Burst done: 1 job ended (1 succeeded), in 1 attempt."
    )
    assert handle.refresh().status is JobStatus.SUCCEEDED
    assert handle.attempts == 1
    assert out.read_text() == f"{handle.id} {second.pid}\n"


def test_second_sigint_exits_at_once_leaving_the_job_leased(
    redisjobs: RedisJobs, start_worker: StartWorker, tmp_path: Path
) -> None:
    out, release = tmp_path / "touched", tmp_path / "release"
    handle = jobs.touch_file_when_released.delay(str(out), str(release))
    worker = start_worker("--name", "w-int", settings=worker_settings(redisjobs))
    started = Path(f"{release}.started")
    wait_until(started.exists, what="the job to start running")

    worker.send_signal(signal.SIGINT)
    wait_until(lambda: "worker stopping" in worker.stderr, what="stop is logged")
    worker.send_signal(signal.SIGINT)

    assert worker.wait() == 1
    assert "second interrupt, exiting now" in worker.stderr
    assert not out.exists()
    handle.refresh()
    # Nothing handed the job back: its lease runs out and the scheduler recovers it.
    assert (handle.status, handle.attempts, handle.job.worker) == (
        JobStatus.ACTIVE,
        1,
        "w-int",
    )


def test_queues_option_serves_only_the_named_queues(
    redisjobs: RedisJobs, start_worker: StartWorker
) -> None:
    on_default = jobs.add.delay(1, 2)
    on_other = jobs.echo.delay("hi")

    worker = start_worker(
        "--burst", "--queues", " other ,", settings=worker_settings(redisjobs)
    )

    assert worker.wait() == 0, worker.stderr
    assert worker.stdout.strip().splitlines() == [
        "Burst done: 1 job ended (1 succeeded), in 1 attempt.",
        "1 job waits in queues this worker does not serve: default (1); name them "
        "in --queues.",
    ]
    assert on_other.refresh().result == "hi"
    assert on_default.refresh().status is JobStatus.QUEUED


def test_without_queues_serves_every_queue_the_functions_name(
    redisjobs: RedisJobs, start_worker: StartWorker
) -> None:
    on_default = jobs.add.delay(1, 2)
    on_other = jobs.echo.delay("hi")

    worker = start_worker("--burst", settings=worker_settings(redisjobs))

    assert worker.wait() == 0, worker.stderr
    assert worker.stdout.strip() == (
        "Burst done: 2 jobs ended (2 succeeded), in 2 attempts."
    )
    assert (on_default.refresh().result, on_other.refresh().result) == (3, "hi")


def test_unreachable_redis_is_a_one_line_command_error(
    redisjobs: RedisJobs, start_worker: StartWorker
) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    worker = start_worker("--burst", settings=worker_settings(redisjobs, REDIS_URL=url))

    assert worker.wait() != 0
    stderr = worker.stderr
    assert "Traceback" not in stderr
    assert stderr.startswith("CommandError: Redis is unreachable: ")
    assert len(stderr.strip().splitlines()) == 1
    assert worker.stdout == ""


def test_invalid_setting_fails_the_system_check_naming_the_key(
    redisjobs: RedisJobs, start_worker: StartWorker
) -> None:
    settings = worker_settings(redisjobs, PREFIX="bad prefix")
    worker = start_worker("--burst", settings=settings)

    assert worker.wait() != 0
    stderr = worker.stderr
    assert "Traceback" not in stderr
    assert stderr.startswith("SystemCheckError: ")
    assert "(redisjobs.E001) REDISJOBS['PREFIX'] is 'bad prefix'." in stderr


def test_invalid_setting_with_checks_skipped_is_a_one_line_command_error(
    redisjobs: RedisJobs, start_worker: StartWorker
) -> None:
    settings = worker_settings(redisjobs, PREFIX="bad prefix")
    worker = start_worker("--burst", "--skip-checks", settings=settings)

    assert worker.wait() != 0
    stderr = worker.stderr
    assert "Traceback" not in stderr
    assert stderr.strip() == (
        "CommandError: REDISJOBS['PREFIX'] is 'bad prefix'. "
        "Use letters, digits, '_', '.' and '-' only."
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--queues", "bad queue"),
            "CommandError: Queue name 'bad queue' is not valid.",
        ),
        (("--concurrency", "0"), "CommandError: --concurrency must be 1 or more."),
    ],
)
def test_invalid_option_is_a_one_line_command_error(
    redisjobs: RedisJobs,
    start_worker: StartWorker,
    args: tuple[str, ...],
    message: str,
) -> None:
    worker = start_worker("--burst", *args, settings=worker_settings(redisjobs))

    assert worker.wait() != 0
    assert worker.stderr.strip() == message


def test_help_lists_the_documented_options(start_worker: StartWorker) -> None:
    worker = start_worker("--help")

    assert worker.wait() == 0, worker.stderr
    for option in (
        "--queues",
        "--concurrency",
        "--prefetch",
        "--burst",
        "--name",
        "--max-jobs",
        "--grace",
        "--no-scheduler",
    ):
        assert option in worker.stdout


def test_max_jobs_exits_after_that_many_jobs(
    redisjobs: RedisJobs, start_worker: StartWorker
) -> None:
    handles = [jobs.add.delay(n, 1) for n in range(3)]

    worker = start_worker("--max-jobs", "2", settings=worker_settings(redisjobs))

    assert worker.wait() == 0, worker.stderr
    statuses = [h.refresh().status for h in handles]
    assert statuses == [JobStatus.SUCCEEDED, JobStatus.SUCCEEDED, JobStatus.QUEUED]
    assert handles[2].attempts == 0


def test_job_of_a_killed_worker_is_recovered_by_another_after_its_lease(
    redisjobs: RedisJobs, start_worker: StartWorker, tmp_path: Path
) -> None:
    lease_s = 1.0
    settings = worker_settings(redisjobs, LEASE_S=lease_s)
    out, release = tmp_path / "touched", tmp_path / "release"
    handle = jobs.touch_file_when_released.delay(str(out), str(release))
    first = start_worker("--name", "w-lost", settings=settings)
    wait_until(
        lambda: handle.refresh().status is JobStatus.ACTIVE, what="job is active"
    )
    assert handle.job.worker == "w-lost"
    # The second worker is idle and ticking before the first dies, so the wait
    # below measures recovery, not Django's start-up.
    second = start_worker("--name", "w-next", "--max-jobs", "1", settings=settings)
    wait_until(lambda: "worker started" in second.stderr, what="second worker start")

    first.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    assert first.wait() == -signal.SIGKILL
    release.touch()
    wait_until(
        lambda: handle.refresh().status is JobStatus.SUCCEEDED,
        timeout_s=5 * lease_s,
        what="the job to be recovered and run again within 5 leases",
    )
    recovered_in = time.monotonic() - killed_at

    assert second.wait() == 0, second.stderr
    assert handle.attempts == 2
    assert handle.job.lost == 1
    assert handle.job.worker == "w-next"
    assert out.read_text() == f"{handle.id} {second.pid}\n"
    raw = redisjobs.client.hgetall(keys.job(redisjobs.prefix, "default", handle.id))
    assert (raw["lost"], raw["attempts"], raw["status"]) == ("1", "2", "succeeded")
    assert "recovered job from a lost worker" in second.stderr
    assert recovered_in < 5 * lease_s


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--prefetch", "-1"], "--prefetch must be 0 or more."),
        (["--max-jobs", "0"], "--max-jobs must be 1 or more."),
        (["--grace", "-1"], "--grace must be 0 or more."),
    ],
)
def test_runworker_rejects_bad_numbers(argv: list[str], message: str) -> None:
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match=message):
        call_command("runworker", *argv)


def test_runworker_with_a_bad_url_fails_clearly_without_the_password() -> None:
    url = "http://user:s3cret@127.0.0.1:1/0"
    env = {**os.environ, "REDISJOBS_TEST_SETTINGS": json.dumps({"REDIS_URL": url})}
    done = subprocess.run(
        [sys.executable, "manage.py", "runworker", "--burst"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "s3cret" not in done.stderr + done.stdout
    # Django's system checks refuse to start the command, naming the problem.
    assert "(redisjobs.E001) REDISJOBS['REDIS_URL'] is 'http://user:***@" in (
        done.stderr
    )
