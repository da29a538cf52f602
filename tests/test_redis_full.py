"""A worker that cannot write outcomes stops claiming, and says which jobs it holds.

Under `maxmemory` with `noeviction` a claim still goes through (its pops free
memory) while the writes of an outcome are refused. The refusal is injected here
at `JobStore.finish`, as the error the store gives for it, so the claims stay
real.
"""

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest

from django_redisjobs import JobStatus, RedisUnavailable
from django_redisjobs.queue import Outcome
from tests import jobs
from tests.faults import running
from tests.polling import wait_until


@contextmanager
def finish_refused(worker: Any) -> Iterator[threading.Event]:
    """Make the worker's outcome writes fail as under OOM until the event is set."""
    memory_freed = threading.Event()
    real_finish = worker.store.finish

    def finish(outcomes: Sequence[Outcome], worker_id: str, now_ms: int) -> list[int]:
        if not memory_freed.is_set():
            # What the store raises for Redis's OOM reply (its error contract).
            raise RedisUnavailable(
                "Could not record outcomes in Redis: command not allowed when "
                "used memory > 'maxmemory'."
            )
        return real_finish(outcomes, worker_id, now_ms)

    worker.store.finish = finish
    try:
        yield memory_freed
    finally:
        del worker.store.finish


def test_no_claims_while_outcomes_cannot_be_written_then_all_finish(
    redisjobs: Any, caplog: pytest.LogCaptureFixture
) -> None:
    handles = jobs.add.enqueue_many([((n, 1), {}) for n in range(1000)])
    worker = redisjobs.worker(burst=False, concurrency=2, prefetch=4)
    caplog.set_level(logging.WARNING, logger="django_redisjobs")
    with finish_refused(worker) as memory_freed, running(worker):
        wait_until(
            lambda: "claims paused" in caplog.text, what="the claim loop to pause"
        )
        claimed = worker.stats.claimed
        # The claims made before the first refusal came back ran and wait in
        # memory; nothing more is claimed while the refusal lasts.
        assert 0 < claimed < 1000
        time.sleep(1.5)  # the refusal lasts: three rounds of the paused loop
        assert worker.stats.claimed == claimed
        assert len(worker.ledger.held_ids()) == claimed
        memory_freed.set()
        wait_until(
            lambda: all(h.refresh().status is JobStatus.SUCCEEDED for h in handles),
            what="every job to succeed once memory is freed",
        )
    assert worker.stats.succeeded == 1000


def test_a_stop_while_outcomes_cannot_be_written_names_every_held_job(
    redisjobs: Any, caplog: pytest.LogCaptureFixture
) -> None:
    handles = jobs.add.enqueue_many([((n, 1), {}) for n in range(20)])
    worker = redisjobs.worker(
        burst=False, concurrency=2, prefetch=4, grace=timedelta(0)
    )
    caplog.set_level(logging.WARNING, logger="django_redisjobs")
    with finish_refused(worker), running(worker):
        wait_until(lambda: "claims paused" in caplog.text)
        held = worker.ledger.held_ids()
    (line,) = [r.getMessage() for r in caplog.records if "stopped holding" in r.message]
    assert f"holding {len(held)} job(s)" in line
    for job_id in held:
        assert job_id in line
    # Nothing was recorded: each job is still waiting or leased to the worker.
    statuses = {h.refresh().status for h in handles}
    assert JobStatus.ACTIVE in statuses
    assert statuses <= {JobStatus.QUEUED, JobStatus.ACTIVE}
