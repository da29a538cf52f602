"""A worker process's side of process mode: its reports and its watch on the
supervisor (django_redisjobs/worker/child.py), in-process."""

import json
import logging
import multiprocessing
import threading
from collections.abc import Iterator
from multiprocessing.connection import Connection
from typing import Any

import pytest

from django_redisjobs import signals
from django_redisjobs.worker.child import Reporter, watch_parent
from tests import jobs
from tests.conftest import RedisJobs
from tests.polling import DEADLINE_S

SPAWN = multiprocessing.get_context("spawn")
WATCH_THREAD = "redisjobs-parent-watch"


@pytest.fixture
def pipe() -> Iterator[tuple[Connection, Connection]]:
    """A one-way pipe as the supervisor makes it: (its read end, the child's)."""
    reader, writer = SPAWN.Pipe(duplex=False)
    yield reader, writer
    reader.close()
    writer.close()


@pytest.fixture
def reporter(pipe: tuple[Connection, Connection]) -> Iterator[Reporter]:
    """A reporter on the job signals, as a worker process connects it."""
    reporter = Reporter(pipe[1])
    reporter.connect()
    yield reporter
    signals.job_started.disconnect(reporter._started)
    signals.job_finished.disconnect(reporter._finished)


def received(reader: Connection) -> list[list[Any]]:
    messages = []
    while reader.poll():
        messages.append(json.loads(reader.recv_bytes()))
    return messages


def test_reporter_reports_the_start_and_end_of_jobs_with_a_timeout_only(
    redisjobs: RedisJobs, pipe: tuple[Connection, Connection], reporter: Reporter
) -> None:
    with_timeout = jobs.sleeps.delay(0)
    async_with_timeout = jobs.async_sleeps.delay(0)
    without_timeout = jobs.add.delay(1, 2)

    stats = redisjobs.run_worker()

    assert stats.by_status == {"succeeded": 3}
    messages = received(pipe[0])
    for handle, timeout_ms in ((with_timeout, 200), (async_with_timeout, 100)):
        about = [m for m in messages if m[1] == handle.id]
        assert about == [
            ["start", handle.id, "default", 1, timeout_ms],
            ["end", handle.id],
        ]
    assert len(messages) == 4
    assert without_timeout.refresh().result == 3


def test_reporter_sends_what_it_is_given_as_one_json_message(
    pipe: tuple[Connection, Connection],
) -> None:
    Reporter(pipe[1]).send(["stats", {"succeeded": 2, "dead": 1}])

    assert received(pipe[0]) == [["stats", {"succeeded": 2, "dead": 1}]]


@pytest.mark.parametrize("closed_end", ["supervisor's", "own"])
def test_reporter_ignores_a_closed_pipe(
    pipe: tuple[Connection, Connection], closed_end: str
) -> None:
    reader, writer = pipe
    (reader if closed_end == "supervisor's" else writer).close()

    Reporter(writer).send(["end", "job-1"])


def watch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == WATCH_THREAD]


class Supervisor:
    """Stands in for `multiprocessing.parent_process()` in a worker process: its
    `join()` returns when the test says the supervisor is gone."""

    def __init__(self) -> None:
        self.gone = threading.Event()

    def join(self, timeout: float | None = None) -> None:
        self.gone.wait(timeout)


def test_worker_stops_when_its_supervisor_is_gone(
    redisjobs: RedisJobs,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    supervisor = Supervisor()
    monkeypatch.setattr(multiprocessing, "parent_process", lambda: supervisor)
    worker = redisjobs.worker(burst=False)

    with caplog.at_level(logging.WARNING, "django_redisjobs.worker.child"):
        watch_parent(worker)
        (watch,) = watch_threads()
        assert not worker.stopping
        supervisor.gone.set()
        watch.join(DEADLINE_S)

    assert not watch.is_alive()
    assert worker.stopping
    assert caplog.messages == [
        f"supervisor is gone, stopping worker id={worker.worker_id}"
    ]


def test_worker_without_a_supervisor_is_not_watched(redisjobs: RedisJobs) -> None:
    # The test process is no multiprocessing child: parent_process() is None.
    worker = redisjobs.worker(burst=False)

    watch_parent(worker)

    assert watch_threads() == []
    assert not worker.stopping
