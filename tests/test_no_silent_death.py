"""No value a job returns or raises, and no damaged hash, stops a worker thread.

Each case once killed a thread while the worker went on looking healthy: the
recorder (an unencodable error message), an executor thread (a result JSON
cannot carry, a retry policy that raises) or the renew thread (a scheduled job
whose hash is not a hash); damaged hashes that stopped the claim loop are cases
of test_worker.py's corrupt-hash test. Each runs next to a valid job, which must
still be recorded.
"""

import dataclasses
import logging
import threading
import time
from typing import Any

import pytest

from django_redisjobs import JobStatus, keys
from django_redisjobs.exceptions import WorkerCrashed
from django_redisjobs.job import now_epoch_ms
from django_redisjobs.registry import registry
from tests import hostile_jobs, jobs
from tests.faults import running
from tests.polling import wait_until


def hash_of(redisjobs: Any, job_id: str, queue: str = "default") -> dict[str, str]:
    return redisjobs.client.hgetall(keys.job(redisjobs.prefix, queue, job_id))


def test_an_error_message_with_a_lone_surrogate_is_stored_escaped(
    redisjobs: Any,
) -> None:
    bad = hostile_jobs.raises_surrogate.delay()
    good = jobs.add.delay(1, 2)

    redisjobs.run_worker(concurrency=1)

    fields = hash_of(redisjobs, bad.id)
    assert fields["status"] == "dead"
    assert fields["error_message"] == "bad \\udcff"
    assert good.refresh().result == 3


@pytest.mark.parametrize("kind", ["surrogate", "huge_int", "deep_list"])
def test_a_result_json_cannot_carry_fails_its_job_not_the_thread(
    redisjobs: Any, kind: str
) -> None:
    bad = hostile_jobs.returns.delay(kind)
    good = jobs.add.delay(1, 2)

    stats = redisjobs.run_worker(concurrency=1)

    fields = hash_of(redisjobs, bad.id)
    assert fields["status"] == "dead"
    assert fields["error_class"] == "django_redisjobs.exceptions.SerializationError"
    assert "The return value" in fields["error_message"]
    assert good.refresh().result == 3
    assert stats.by_status == {"dead": 1, "succeeded": 1}


def test_a_retry_policy_that_raises_ends_the_job_dead_and_the_thread_goes_on(
    redisjobs: Any,
) -> None:
    # Decoration refuses such options; a spec registered another way must still
    # not take a thread with it.
    spec = registry.get(hostile_jobs.fails.name)
    broken = dataclasses.replace(spec, retry_on=("x",))  # type: ignore[arg-type]  # the point of the test
    registry.register(broken)
    try:
        bad = hostile_jobs.fails.delay()
        good = jobs.add.delay(1, 2)
        redisjobs.run_worker(concurrency=1)
    finally:
        registry.register(spec)

    fields = hash_of(redisjobs, bad.id)
    assert fields["status"] == "dead"
    assert fields["error_class"] == "builtins.TypeError"
    assert good.refresh().result == 3


def test_a_scheduled_job_whose_key_is_not_a_hash_does_not_stop_heartbeats(
    redisjobs: Any,
) -> None:
    prefix = redisjobs.prefix
    redisjobs.client.set(keys.job(prefix, "default", "not-a-hash"), "x")
    redisjobs.client.zadd(keys.scheduled(prefix, "default"), {"not-a-hash": 1})
    worker = redisjobs.worker(burst=False)
    worker_key = keys.worker(prefix, worker.worker_id)
    with running(worker):
        wait_until(lambda: redisjobs.client.exists(worker_key), what="a heartbeat")
        first = int(redisjobs.client.hget(worker_key, "expires_ms"))
        # Heartbeats come every third of the 5 s lease: wait for the next two.
        wait_until(
            lambda: (
                int(redisjobs.client.hget(worker_key, "expires_ms") or 0)
                > first + 2_000
            ),
            timeout_s=10,
            what="heartbeats after the failed promotion",
        )
        handle = jobs.add.delay(2, 2)
        wait_until(lambda: handle.refresh().status is JobStatus.SUCCEEDED)


def test_a_thread_that_dies_stops_the_worker_loudly_and_hands_back_its_jobs(
    redisjobs: Any,
) -> None:
    worker = redisjobs.worker(burst=False, concurrency=1)
    handle = jobs.add.delay(1, 1)

    def crash() -> None:
        raise RuntimeError("a bug in the renew loop")

    worker._renewer.run = crash  # type: ignore[method-assign]  # the injected fault
    started = time.monotonic()
    with pytest.raises(WorkerCrashed, match="redisjobs-renew"):
        worker.run()
    assert time.monotonic() - started < 10
    # Claimed or not, the job is not left active under a dead worker.
    assert handle.refresh().status in (JobStatus.QUEUED, JobStatus.SUCCEEDED)
    assert not redisjobs.client.zscore(keys.workers(redisjobs.prefix), worker.worker_id)
    assert now_epoch_ms()


def test_job_controlled_text_cannot_forge_log_lines_or_send_escapes(
    redisjobs: Any, caplog: pytest.LogCaptureFixture
) -> None:
    hostile_jobs.raises_forged_lines.delay(2)
    caplog.set_level(logging.INFO, logger="django_redisjobs")

    redisjobs.run_worker(concurrency=1)

    lines = [
        r.getMessage() for r in caplog.records if "raises_forged_lines" in r.message
    ]
    assert lines  # the retrying line and the dead line
    for line in lines:
        first, _, traceback = line.partition("\n")
        assert "boom\\nINFO django_redisjobs: job succeeded \\x1b[2J" in first
        assert "\x1b" not in line
        assert "\nINFO" not in line
        assert traceback == "" or traceback.startswith("Traceback")
        assert all(not n or n.startswith("    ") for n in traceback.split("\n")[1:])


def test_a_stop_requested_while_the_ledger_lock_is_held_does_not_deadlock(
    redisjobs: Any,
) -> None:
    # A SIGTERM handler runs in the main thread between any two bytecodes, also
    # while the claim loop holds the ledger's lock.
    worker = redisjobs.worker()
    done = threading.Event()

    def stop_inside_the_lock() -> None:
        with worker.ledger._lock:
            worker.request_stop()
        done.set()

    threading.Thread(target=stop_inside_the_lock, daemon=True).start()
    assert done.wait(5), "request_stop() waited for a lock its own thread held"
    assert worker.stopping
