"""Helpers for the fault-injection tests: workers in threads, polling, private Redis.

Waits poll something a worker makes observable (a job's hash, an event) until a
deadline; the fixed pauses in these tests are the faults themselves (how long
Redis stays away), never a guess at how long the code under test needs.
"""

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import redis
from django.test import override_settings

from django_redisjobs import JobHandle, JobStatus, RedisUnavailable
from django_redisjobs.worker import Worker
from tests import fault_jobs
from tests.conftest import RedisJobs, suite_settings
from tests.polling import DEADLINE_S
from tests.servers import RedisServer


def status_of(handle: JobHandle) -> JobStatus | None:
    """The job's status, or None while Redis does not answer."""
    try:
        return handle.refresh().status
    except (RedisUnavailable, redis.RedisError):
        return None


def all_finished(handles: Sequence[JobHandle]) -> bool:
    return all(status_of(h) in (JobStatus.SUCCEEDED, JobStatus.DEAD) for h in handles)


@contextmanager
def running(worker: Worker) -> Iterator[Worker]:
    """Run `worker` in a thread; stop it and check it ended cleanly on exit."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            worker.run()
        except BaseException as err:
            errors.append(err)
            raise

    thread = threading.Thread(target=target, name=f"worker-{worker.worker_id}")
    thread.start()
    try:
        yield worker
    finally:
        worker.request_stop()
        thread.join(timeout=DEADLINE_S)
    assert not thread.is_alive(), "the worker did not stop"
    assert not errors, f"the worker crashed: {errors[0]!r}"


@contextmanager
def redisjobs_on(server: RedisServer, **settings: Any) -> Iterator[RedisJobs]:
    """Point REDISJOBS at a private server (fast retries, 1 s leases by default)."""
    values = {**suite_settings(server, "faults"), "LEASE_S": 1, **settings}
    with override_settings(REDISJOBS=values):
        yield RedisJobs(server, "faults", values)


@contextmanager
def fresh_fault_jobs() -> Iterator[None]:
    """Forget earlier runs; at exit release every held job so no thread outlives
    its test."""
    fault_jobs.reset()
    try:
        yield
    finally:
        fault_jobs.release_all()


def in_forked_child(work: Callable[[], str]) -> str:
    """Run `work` in a forked child and return what it returned (or raised)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child's coverage is not collected
        try:
            out = work()
        except BaseException as err:
            out = f"raised {err!r}"
        os.write(write_end, out.encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        out = pipe.read()
    os.waitpid(pid, 0)
    return out
