"""Graceful stop in-process: what goes back to the queue, in which order, at what cost.

The signal paths (SIGTERM, a second SIGINT) run `manage.py runworker` as a real
process in tests/test_runworker.py; here the worker's own stop is checked.
"""

import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest

from django_redisjobs import JobStatus, keys
from tests import fault_jobs
from tests.conftest import RedisJobs
from tests.faults import fresh_fault_jobs
from tests.polling import wait_until


@pytest.fixture(autouse=True)
def _fault_jobs() -> Iterator[None]:
    with fresh_fault_jobs():
        yield


def test_stop_puts_prefetched_then_running_jobs_back_at_the_head_in_order(
    redisjobs: RedisJobs,
) -> None:
    running = fault_jobs.held.delay("r")
    prefetched = [fault_jobs.quick.delay(n) for n in range(2)]
    untouched = fault_jobs.quick.delay(9)
    worker = redisjobs.worker(
        burst=False,
        concurrency=1,
        prefetch=2,
        grace=timedelta(seconds=0.2),
        idle_wait=timedelta(seconds=0.05),
    )
    thread = threading.Thread(target=worker.run)
    thread.start()
    wait_until(
        lambda: (
            [h.refresh().status for h in (running, *prefetched)]
            == [JobStatus.ACTIVE] * 3
        ),
        what="three claims",
    )

    worker.request_stop()
    thread.join(timeout=10)

    assert not thread.is_alive()
    ready = keys.ready(redisjobs.prefix, "default")
    order = [running, *prefetched, untouched]
    assert redisjobs.client.lrange(ready, 0, -1) == [h.id for h in order]
    for handle in order:
        handle.refresh()
        assert (handle.status, handle.attempts, handle.job.worker) == (
            JobStatus.QUEUED,
            0,
            "",
        )
    assert [fault_jobs.runs[h.id] for h in order] == [1, 0, 0, 0]
    assert worker.stats.requeued == 3

    fault_jobs.gate("r").set()  # the abandoned attempt ends; nothing records it
    redisjobs.run_worker()
    assert [h.refresh().status for h in order] == [JobStatus.SUCCEEDED] * 4
    assert [h.attempts for h in order] == [1, 1, 1, 1]
